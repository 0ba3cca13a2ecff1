"""Unit constants.  The only module that holds the literals 1024 and 1e9."""

from __future__ import annotations

KIB_BYTES = 1024
MIB_BYTES = 1024 * KIB_BYTES
GIB_BYTES = 1024 * MIB_BYTES
GHZ_HZ = 1e9
MHZ_HZ = 1e6
BITS_PER_BYTE = 8
