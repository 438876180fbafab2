#!/usr/bin/env python3
"""Writes a UF2 file (the RP2040 boot ROM's drag-and-drop format) from a flat image.

uf2.py IMAGE.bin OUT.uf2 [BASE]: the image is placed at BASE (default 0x10000000, the
RP2040's flash) in 256-byte payloads, one per 512-byte block, with the RP2040 family ID,
as https://github.com/microsoft/uf2 specifies.
"""
import struct
import sys

MAGIC_START0, MAGIC_START1, MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
RP2040_FAMILY = 0xE48BFF56
PAYLOAD = 256


def uf2(image: bytes, base: int) -> bytes:
    blocks = [image[i:i + PAYLOAD] for i in range(0, len(image), PAYLOAD)]
    out = bytearray()
    for n, chunk in enumerate(blocks):
        header = struct.pack("<8I", MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID,
                             base + n * PAYLOAD, PAYLOAD, n, len(blocks), RP2040_FAMILY)
        data = chunk.ljust(476, b"\0")
        out += header + data + struct.pack("<I", MAGIC_END)
    return bytes(out)


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: uf2.py IMAGE.bin OUT.uf2 [BASE]")
    base = int(sys.argv[3], 0) if len(sys.argv) == 4 else 0x10000000
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    if not image:
        sys.exit(f"{sys.argv[1]}: empty image")
    with open(sys.argv[2], "wb") as f:
        f.write(uf2(image, base))


if __name__ == "__main__":
    main()
