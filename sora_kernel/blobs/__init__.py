"""Blob storage: the filesystem backend and a size-bounded LRU cache for remote backends."""

from .cache import BlobCache
from .fs import FilesystemBlobStore

__all__ = ["BlobCache", "FilesystemBlobStore"]
