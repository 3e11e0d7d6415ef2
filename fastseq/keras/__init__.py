"""fastseq's Keras classes: ``keras.utils.PyDataset`` subclasses whose batches
are decoded by fastseq's C core.

- :mod:`fastseq.keras.base`: what they share (epoch order, batch slicing,
  prefetch, decoding from files, Keras' legacy iterator contract);
- :mod:`fastseq.keras.prefetch`: one batch decoded ahead on one thread;
- :mod:`fastseq.keras.tfdata`: the tf.data pipeline ``model.fit`` and
  ``to_tf_dataset`` serve the batches through on TensorFlow;
- :mod:`fastseq.keras.image_generator`: ``ImageDataGenerator`` and
  ``DirectoryIterator`` (``flow_from_directory``);
- :mod:`fastseq.keras.array_iterator`: ``NumpyArrayIterator`` (``flow``);
- :mod:`fastseq.keras.dataframe_iterator`: ``DataFrameIterator``
  (``flow_from_dataframe``; imports pandas);
- :mod:`fastseq.keras.sequence`: ``ImageSequence``;
- :mod:`fastseq.keras.listing`: the directory listing (imports no Keras).

Importing this package imports no Keras: the classes load it on first use,
as ``from fastseq import ImageSequence`` does.
"""

from __future__ import annotations

CLASSES = {
    "ImageSequence": "fastseq.keras.sequence",
    "ImageDataGenerator": "fastseq.keras.image_generator",
    "DirectoryIterator": "fastseq.keras.image_generator",
    "Iterator": "fastseq.keras.base",
    "NumpyArrayIterator": "fastseq.keras.array_iterator",
    "DataFrameIterator": "fastseq.keras.dataframe_iterator",
}

__all__ = list(CLASSES)


def __getattr__(name: str):
    if name in CLASSES:
        import importlib

        return getattr(importlib.import_module(CLASSES[name]), name)
    raise AttributeError(f"module 'fastseq.keras' has no attribute {name!r}")
