"""Models: from-scratch encoders cut into the paper's five blocks, DeepLabV3+, the pivot network, the IML model."""
from .deeplab import ASPP, ASPPPooling, DeepLabV3PlusDecoder, IMLModel, ModelOutput, build_model
from .encoders import ENCODERS, OUTPUT_STRIDES, ResNetEncoder, SwinEncoder, get_encoder
from .heads import ConvBNReLU, LogitHead, init_weights
from .pivot import MaskedBatchNorm, PivotBranch, PivotNetwork

__all__ = [
    "ASPP",
    "ASPPPooling",
    "ConvBNReLU",
    "DeepLabV3PlusDecoder",
    "ENCODERS",
    "IMLModel",
    "LogitHead",
    "MaskedBatchNorm",
    "ModelOutput",
    "OUTPUT_STRIDES",
    "PivotBranch",
    "PivotNetwork",
    "ResNetEncoder",
    "SwinEncoder",
    "build_model",
    "get_encoder",
    "init_weights",
]
