"""Pooling operators: one contract (:class:`Pooler`), many small poolers, a string resolver."""

from .adapool import AdaPool
from .attention import AttentionPooling
from .base import Pooler
from .basic import (
    FirstPooling,
    LastPooling,
    MaxPooling,
    MeanPooling,
    MeanSqrtLenPooling,
    MinPooling,
    SumPooling,
    WeightedMeanPooling,
)
from .dispatch import use_dense
from .gated import GatedAttentionPooling
from .gem import GeMPooling
from .head import EmbeddingHead, pack_bits, unpack_bits
from .latent_attention import LatentAttentionPooling
from .multi import MultiPooling
from .registry import ST_MODES, get_pooler, list_poolers, pooler_class, register
from .softmax import SoftmaxPooling
from .streaming import PoolState, adapool_query, mergeable, pool_chunks
from .warm import warm_start
from .wavg import WeightedAveragePooling

__all__ = [
    "AdaPool", "AttentionPooling", "EmbeddingHead", "FirstPooling", "GatedAttentionPooling", "GeMPooling",
    "LastPooling", "LatentAttentionPooling", "MaxPooling", "MeanPooling", "MeanSqrtLenPooling",
    "MinPooling", "MultiPooling", "PoolState", "Pooler", "SoftmaxPooling", "SumPooling",
    "WeightedAveragePooling", "WeightedMeanPooling",
    "ST_MODES", "adapool_query", "get_pooler", "list_poolers", "mergeable", "pack_bits", "pool_chunks",
    "pooler_class", "register", "unpack_bits", "use_dense", "warm_start",
]
