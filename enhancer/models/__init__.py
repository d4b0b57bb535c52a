"""Pure nn.Modules: building blocks, the spatio-temporal generator and the clip discriminator."""
from enhancer.models.discriminator import Discriminator, DiscriminatorConfig
from enhancer.models.generator import CONFIGS, Generator, GeneratorConfig

__all__ = ["CONFIGS", "Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig"]
