"""Files with provenance, built in the test: PNG text chunks, EXIF, XMP, C2PA manifests signed with a test CA."""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from gendet.provenance.container import PNG_SIGNATURE

REAL = Path(__file__).resolve().parents[2] / "gendet" / "assets" / "real"
GENUINE = Path(__file__).resolve().parents[3] / "shared" / "data" / "genuine"
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def photo(name: str = "mate_Wood.png", size: int | None = None) -> Image.Image:
    img = Image.open(REAL / name).convert("RGB")
    return img if size is None else img.resize((size, size))


def png_bytes(img: Image.Image | None = None) -> bytes:
    buf = io.BytesIO()
    (img or photo()).save(buf, "PNG")
    return buf.getvalue()


def chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) if crc is None
                                                                   else crc)


def with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """`png` with `chunks` inserted right after IHDR (where generators put their text)."""
    assert png.startswith(PNG_SIGNATURE)
    ihdr_end = 8 + 12 + struct.unpack_from(">I", png, 8)[0]
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def text(key: str, value: str) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))


def itext(key: str, value: str, compressed: bool = False) -> bytes:
    body = value.encode("utf-8")
    body = zlib.compress(body) if compressed else body
    return chunk(b"iTXt", key.encode() + b"\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + body)


def comfy_prompt(model: str = "sd_xl_base_1.0.safetensors") -> str:
    import json

    return json.dumps({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
                       "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "model": ["4", 0]}}})


def xmp_packet(source: str | None = AI_SOURCE, extra: str = "") -> str:
    attr = f' Iptc4xmpExt:DigitalSourceType="{source}"' if source else ""
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
            f'{attr}>{extra}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def camera_jpeg(img: Image.Image | None = None, make: str = "Canon", model: str = "Canon EOS 5D Mark II",
                software: str | None = None, user_comment: bytes | None = None, xmp: str | None = None) -> bytes:
    exif = Image.Exif()
    if make:
        exif[0x010F], exif[0x0110] = make, model
    if software:
        exif[0x0131] = software
    ifd = exif.get_ifd(0x8769)
    if make:
        ifd[0x829A], ifd[0x829D], ifd[0x8827] = 1 / 200, 5.6, 100
    if user_comment is not None:
        ifd[0x9286] = user_comment
    buf = io.BytesIO()
    kwargs = {"xmp": xmp.encode()} if xmp else {}
    (img or photo()).save(buf, "JPEG", quality=92, exif=exif, **kwargs)
    return buf.getvalue()


def test_ca(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """(signing chain PEM, private key PEM, CA PEM): an ES256 leaf signed by a test CA, as C2PA requires."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gendet tests")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                             encipher_only=False, decipher_only=False)

    def build(subject: str, issuer: x509.Name, key, signer_key, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(usage(not ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
                                critical=False))
        return b.sign(signer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("gendet test CA", name("gendet test CA"), ca_key, ca_key, True)
    leaf = build("gendet test signer", ca.subject, key, ca_key, False)
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, private, ca.public_bytes(pem)


def signed_jpeg(tmp_path: Path, source: str = AI_SOURCE, action: str = "c2pa.created",
                img: Image.Image | None = None) -> tuple[bytes, bytes]:
    """(a JPEG with a C2PA manifest signed by a test CA, that CA's PEM)."""
    import c2pa

    chain, private, ca = test_ca(tmp_path)
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=private,
                                                       ta_url=None))
    manifest = {"claim_generator_info": [{"name": "gendet-test-generator", "version": "1"}], "title": "test",
                "format": "image/jpeg", "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": action, "digitalSourceType": source, "softwareAgent": {"name": "TestDiffusion"}}]}}]}
    src = io.BytesIO()
    (img or photo()).save(src, "JPEG", quality=90)
    src.seek(0)
    out = io.BytesIO()
    c2pa.Builder(manifest).sign(signer, "image/jpeg", src, out)
    return out.getvalue(), ca


def tampered(data: bytes) -> bytes:
    """`data` with one byte of its last entropy-coded scan flipped (the manifest's hash no longer matches)."""
    b = bytearray(data)
    b[-300] ^= 0xFF
    return bytes(b)


def watermarked(img: Image.Image, payload: bytes = b"StableDiffusionV1") -> Image.Image:
    """`img` with `payload` embedded as the Stable Diffusion reference scripts do (DWT-DCT on BGR)."""
    from imwatermark import WatermarkEncoder

    enc = WatermarkEncoder()
    enc.set_watermark("bytes", payload)
    bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
    return Image.fromarray(np.ascontiguousarray(enc.encode(bgr, "dwtDct")[:, :, ::-1]))


def textured(n: int = 2) -> Image.Image:
    """A shipped photo tiled n x n: large enough to carry a watermark, with its native texture (an upscaled
    photo is too smooth for DWT-DCT watermarks to survive even losslessly)."""
    w = photo("mate_Wood.png")
    out = Image.new("RGB", (w.width * n, w.height * n))
    for i in range(n):
        for j in range(n):
            out.paste(w, (i * w.width, j * w.height))
    return out
