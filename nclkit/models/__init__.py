"""Models: from-scratch encoders cut into the paper's five blocks, DeepLabV3+, and the IML model."""
from .deeplab import ASPP, ASPPPooling, DeepLabV3PlusDecoder, IMLModel, ModelOutput, build_model
from .encoders import ENCODERS, OUTPUT_STRIDES, ResNetEncoder, SwinEncoder, get_encoder
from .heads import ConvBNReLU, LogitHead, init_weights

__all__ = [
    "ASPP",
    "ASPPPooling",
    "ConvBNReLU",
    "DeepLabV3PlusDecoder",
    "ENCODERS",
    "IMLModel",
    "LogitHead",
    "ModelOutput",
    "OUTPUT_STRIDES",
    "ResNetEncoder",
    "SwinEncoder",
    "build_model",
    "get_encoder",
    "init_weights",
]
