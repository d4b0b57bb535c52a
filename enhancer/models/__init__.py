"""Pure nn.Modules: building blocks, the generators and the discriminators."""
from enhancer.models.discriminator import Discriminator, DiscriminatorConfig, FrameDiscriminator
from enhancer.models.fusion import FUSION_CONFIGS, FusionConfig, FusionGenerator
from enhancer.models.generator import CONFIGS, Generator, GeneratorConfig
from enhancer.models.st3d import ST3D_CONFIGS, ST3DConfig, ST3DGenerator

# the generators that take flow-aligned stacks (N, (2r + 1) * 3, H, W), one output frame each
ALIGNED = (FusionGenerator, ST3DGenerator)

__all__ = ["ALIGNED", "CONFIGS", "ST3D_CONFIGS", "ST3DConfig", "ST3DGenerator", "Discriminator", "DiscriminatorConfig", "FUSION_CONFIGS", "FrameDiscriminator", "FusionConfig",
           "FusionGenerator", "Generator", "GeneratorConfig"]
