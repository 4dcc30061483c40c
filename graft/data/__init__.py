"""Loading, checking, splitting and preprocessing a user's labelled data."""

from graft.data.dataset import DataSplits, LabelledData
from graft.data.sources import load_data, load_inputs, load_splits
from graft.data.split import stratified_split

__all__ = [
    "DataSplits",
    "LabelledData",
    "load_data",
    "load_inputs",
    "load_splits",
    "stratified_split",
]
