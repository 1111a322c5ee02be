"""Tiny, valid one-page PDFs for seeded files and email content."""

from __future__ import annotations


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, A4) showing `lines`; offsets in the xref table are exact."""
    shown = "".join(
        f"({_escape(line.encode('latin-1', 'replace').decode('latin-1'))}) Tj T* " for line in lines
    )
    stream = f"BT /F1 12 Tf 14 TL 72 770 Td {shown}ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def invoice_pdf(number: int) -> bytes:
    """A distinct small invoice-looking PDF (distinct bytes, so duplicate detection does not fire)."""
    return text_pdf([f"INVOICE No. {number:08d}", "Acme Office Supplies GmbH", "Total: 119.00 EUR"])


def email_pdf(document_id: str, title: str) -> bytes:
    return text_pdf(
        [
            "From: supplier@example.com",
            "To: invoices@example.com",
            f"Subject: {title}",
            "",
            f"Merged email content of document {document_id}",
        ]
    )
