"""Pure nn.Modules: building blocks, the generators and the discriminators."""
from enhancer.models.discriminator import Discriminator, DiscriminatorConfig, FrameDiscriminator
from enhancer.models.fusion import FUSION_CONFIGS, FusionConfig, FusionGenerator
from enhancer.models.generator import CONFIGS, Generator, GeneratorConfig

__all__ = ["CONFIGS", "Discriminator", "DiscriminatorConfig", "FUSION_CONFIGS", "FrameDiscriminator", "FusionConfig",
           "FusionGenerator", "Generator", "GeneratorConfig"]
