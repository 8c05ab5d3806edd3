"""Hostile files, generated small and fast: each one is built to exhaust a reader."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def pdf(objects: list[bytes]) -> bytes:
    """A PDF with these objects (1-based; object 1 is the catalog) and a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _stream(data: bytes, *, filtered: bool = True) -> bytes:
    head = b"<< /Length %d%s >>\nstream\n" % (len(data), b" /Filter /FlateDecode" if filtered else b"")
    return head + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _one_page(contents: bytes) -> bytes:
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            contents,
            _FONT,
        ]
    )


def nested_pdf(depth: int = 200_000) -> bytes:
    """An object tree nested 200,000 arrays deep."""
    deep = b"[" * depth + b"]" * depth
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Deep " + deep + b" >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    )


def fan_out_pdf(levels: int = 8, width: int = 50) -> bytes:
    """A page tree whose every node lists the next one 50 times: 50**8 pages in 3 KB."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(levels):
        kids = b" ".join([b"%d 0 R" % (3 + level)] * width)
        objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % (width ** (levels - level)))
    objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] >>" % (1 + levels))
    return pdf(objects)


def inflating_pdf(gigabytes: int = 4) -> bytes:
    """A content stream of 4 MB that inflates to 4 GB.

    Built from one fully flushed deflate block repeated: each copy decodes on
    its own, so the stream is valid for as long as any reader keeps going.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b" " * (1 << 24)) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = b"\x78\xda" + block * (gigabytes * 64) + compressor.flush() + b"\x00\x00\x00\x00"
    return _one_page(_stream(body))


def slow_pdf(operations: int = 200_000) -> bytes:
    """One page of 200,000 empty text objects: seconds of parsing per page, for no text."""
    return _one_page(_stream(zlib.compress(b"BT () Tj ET\n" * operations, 9)))


def docx_bomb(megabytes: int = 256) -> bytes:
    """A Word file whose document part expands to 256 MB from about 250 KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        with zf.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(b'<?xml version="1.0"?><w:document xmlns:w="x"><w:body><w:p><w:r><w:t>')
            chunk = b"A" * (1 << 20)
            for _ in range(megabytes):
                part.write(chunk)
            part.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return out.getvalue()


def many_paragraphs_docx(paragraphs: int = 400_000) -> bytes:
    """A real Word file of many tiny paragraphs (about 1 MB): a parse tree bigger than a small
    memory limit, which libxml2 reports as "unknown error (<string>, line 0)"."""
    import docx

    base = io.BytesIO()
    docx.Document().save(base)
    body = b"".join(b"<w:p><w:r><w:t>p%d</w:t></w:r></w:p>" % i for i in range(paragraphs))
    out = io.BytesIO()
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + body, 1)
            target.writestr(item, data)
    return out.getvalue()


def tag_bomb_html(tags: int = 400_000) -> bytes:
    """3 MB of tiny paragraphs: a parse tree of hundreds of megabytes."""
    return b"<!doctype html><html><body>" + b"<p>a</p>" * tags + b"</body></html>"


def zip_bomb(main_part: str, megabytes: int = 256, *, epub: bool = False) -> bytes:
    """A PPTX, XLSX or EPUB (by its main part) whose one member expands to 256 MB from about 250 KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        if epub:
            zf.writestr("mimetype", b"application/epub+zip")
        with zf.open(main_part, "w", force_zip64=True) as part:
            chunk = b"A" * (1 << 20)
            for _ in range(megabytes):
                part.write(chunk)
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 60-byte PNG that declares ten gigapixels: 10 GB to decode, were anyone to try."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def pdf_image_bomb(width: int = 200_000, height: int = 200_000) -> bytes:
    """A page that draws one image of 40 gigapixels from a few bytes of stream."""
    image = (
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
    )
    body = zlib.compress(b"\x00" * 4096)
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /XObject << /Im1 5 0 R >> >> >>",
            _stream(b"q 612 0 0 792 0 0 cm /Im1 Do Q", filtered=False),
            image % (width, height, len(body)) + body + b"\nendstream",
        ]
    )


def shared_string_xlsx(rows: int = 2000, columns: int = 10, length: int = 32_000) -> bytes:
    """A workbook whose 20,000 cells all show one 32,000-character string: 640 MB of text from 100 KB."""
    cell = b'<c t="s"><v>0</v></c>'
    sheet = (
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b"<sheetData>" + (b"<row>" + cell * columns + b"</row>") * rows + b"</sheetData></worksheet>"
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="/xl/workbook.xml" ContentType="application/'
            b'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            b'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
            b'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rels}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0"?><workbook xmlns="{main}" xmlns:r="{rels}">'
            '<sheets><sheet name="Bomb" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rels}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{rels}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
        ).encode(),
        "xl/worksheets/sheet1.xml": sheet,
        "xl/sharedStrings.xml": (
            f'<?xml version="1.0"?><sst xmlns="{main}" count="1" uniqueCount="1"><si><t>'.encode()
            + b"word " * (length // 5)
            + b"</t></si></sst>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return out.getvalue()
