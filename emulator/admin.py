"""Admin API under /_emulator: faults, clients, seeding, counters, quotas, records and the request log.

Not rate limited, not counted, no auth. The test harness calls the same `AdminService` methods on
the event loop thread, so both paths share validation and behaviour.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.clock import iso
from emulator.core import Emulator
from emulator.errors import ApiError, dumps, json_bytes
from emulator.pdf import invoice_pdf
from emulator.state.enrichment import KINDS

DEMO_PROJECT = {
    "name": "Demo invoices",
    "note": "Seeded by the emulator",
    "ocr": {"engine": "google", "features": ["barcodes"]},
    "extractionModelId": "63e6663823b4c1f5287398bb",
    "completion": "automatic",
    "duplicates": "allow",
    "members": {"allow": "all"},
}


class AdminService:
    """Operations behind the admin API; every result is plain JSON data (copied, never shared)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._files_seeded = 0

    # ---- observation -------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        return self.emu.counters.snapshot()

    def reset_counters(self) -> dict[str, Any]:
        self.emu.counters.reset()
        return self.counters()

    def requests(self, clear: bool = False) -> list[dict[str, Any]]:
        return _copy(self.emu.log.entries(clear))

    def quotas(self, clear: bool = False) -> dict[str, Any]:
        """Per API client ("-" for calls tied to none): calls charged and 429s, in total and per window."""
        return self.emu.limiter.usage(clear)

    def records(self) -> dict[str, Any]:
        """The emulator's own account of every stored file and document, in creation order.

        `clientId` names the API client that created the entry (None when seeded through this API).
        """
        files, documents = self.emu.store.records()
        clients = {client.user_id: client.client_id for client in self.emu.auth.clients.values()}
        uploads: dict[str, int] = {}
        for stored in files:
            uploads[stored.sha256] = uploads.get(stored.sha256, 0) + 1
        return {
            "files": [
                {
                    "id": f.id,
                    "filename": f.filename,
                    "contentType": f.content_type,
                    "size": f.size,
                    "sha256": f.sha256,
                    "createdAt": iso(f.created_at),
                    "clientId": clients.get(f.created_by),
                }
                for f in files
            ],
            "documents": [
                {
                    "id": d.id,
                    "fileId": d.file_id,
                    "projectId": d.project_id,
                    "externalId": d.external_id,
                    "state": d.state,
                    "createdAt": iso(d.created_at),
                    "clientId": clients.get(d.created_by),
                }
                for d in documents
            ],
            "uploads_by_sha256": uploads,
        }

    # ---- settings, clients, tokens -----------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        return self.emu.settings.as_dict()

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        self.emu.settings.update(changes)
        return self.faults()

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        scopes: Any = None,
        rate_limit: int | None = None,
        rate_window_s: float | None = None,
    ) -> dict[str, Any]:
        client = self.emu.auth.add_client(client_id, client_secret, scopes, rate_limit, rate_window_s)
        return {
            "client_id": client.client_id,
            "scopes": sorted(client.scopes),
            "rate_limit": client.rate_limit,
            "rate_window_s": client.rate_window_s,
        }

    def revoke(self, client_id: str | None = None) -> dict[str, Any]:
        return {"revoked": self.emu.auth.revoke(client_id)}

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return {"offset_s": self.emu.clock.advance(float(seconds))}

    # ---- seeding -----------------------------------------------------------------------------

    def seed_project(self, **fields: Any) -> dict[str, Any]:
        payload = {**DEMO_PROJECT, **fields}
        try:
            return _copy(self.emu.store.create_project(payload, "emulator"))
        except ApiError as exc:
            raise ValueError(exc.detail) from None

    def seed_company(self, name: str = "Demo Buyer GmbH", active: bool = True) -> dict[str, Any]:
        return _copy(self.emu.store.add_company(name, active))

    def seed_file(
        self, content: bytes, content_type: str = "application/pdf", filename: str | None = None
    ) -> dict[str, Any]:
        try:
            stored = self.emu.store.add_file(content, content_type, filename)
        except ApiError as exc:
            raise ValueError(exc.detail) from None
        return {
            "id": stored.id,
            "contentType": stored.content_type,
            "filename": stored.filename,
            "size": stored.size,
        }

    def default_project_id(self) -> str:
        """The oldest project, created on demand, used when a seed call names none."""
        store = self.emu.store
        if not store.projects:
            self.seed_project()
        return next(iter(store.projects))

    def seed_documents(
        self,
        count: int = 1,
        project_id: str | None = None,
        state: str | None = None,
        lifecycle: bool = False,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """Create documents; `lifecycle=True` starts them as process-file would, else they end in `state`."""
        store = self.emu.store
        project_id = project_id or self.default_project_id()
        if project_id not in store.projects:
            raise KeyError(f"project {project_id} does not exist")
        docs = []
        for _ in range(int(count)):
            self._files_seeded += 1
            stored = store.add_file(
                invoice_pdf(self._files_seeded),
                "application/pdf",
                fields.get("filename") or f"invoice-{self._files_seeded:05d}.pdf",
            )
            if lifecycle:
                doc = store.process_file(stored.id, project_id, "emulator")
            else:
                doc = store.seed_document(stored, project_id, state, "emulator")
            _apply_fields(doc, fields)
            docs.append(doc.view())
        return _copy(docs)

    # ---- inspection and driving --------------------------------------------------------------

    def document(self, document_id: str) -> dict[str, Any]:
        doc = self._document(document_id)
        view = doc.view()
        view["_emulator"] = {
            "transfers": doc.transfers,
            "pending": [{"at": at, "state": s} for at, s in doc.pending],
            "states": doc.states(),
        }
        return _copy(view)

    def set_document_state(self, document_id: str, state: str) -> dict[str, Any]:
        self._document(document_id)
        return _copy(self.emu.store.force_state(document_id, state).view())

    def enrichment(self, kind: str) -> list[dict[str, Any]]:
        if kind not in KINDS:
            raise KeyError(f"unknown enrichment kind {kind!r}")
        return _copy(self.emu.store.enrichment.dump(kind))

    def reset(self) -> dict[str, Any]:
        """Forget all data, counters, logged requests, quotas and tokens; keep clients and settings."""
        self.emu.store.reset()
        self.emu.counters.reset()
        self.emu.log.clear()
        self.emu.limiter.reset()
        self.emu.auth.revoke(None)
        return {"reset": True}

    def _document(self, document_id: str) -> Any:
        try:
            return self.emu.store.get_document(document_id)
        except ApiError:
            raise KeyError(f"document {document_id} does not exist") from None


def _apply_fields(doc: Any, fields: dict[str, Any]) -> None:
    if "externalId" in fields:
        doc.external_id = fields["externalId"]
    if "externalData" in fields:
        doc.external_data = dict(fields["externalData"])
    if "title" in fields:
        doc.title = fields["title"]
    doc.touch(doc.updated_at, doc.updated_by)


def _copy(data: Any) -> Any:
    """Deep copy through JSON so callers on other threads never share live state."""
    return json.loads(dumps(data))


# ---- HTTP layer ------------------------------------------------------------------------------

AdminHandler = Callable[[AdminService, web.Request, dict[str, Any]], Any]


def _wrap(service: AdminService, fn: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
            body = json.loads(raw) if raw else {}
            result = fn(service, request, body)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except KeyError as exc:
            return web.json_response({"error": str(exc.args[0] if exc.args else exc)}, status=404)
        return web.Response(body=json_bytes(result), content_type="application/json")

    return handler


def _seed_file(service: AdminService, request: web.Request, body: dict[str, Any]) -> Any:
    try:
        content = base64.b64decode(body["content_base64"], validate=True)
    except (KeyError, binascii.Error) as exc:
        raise ValueError("content_base64 (base64 of the file bytes) is required") from exc
    return service.seed_file(content, body.get("content_type", "application/pdf"), body.get("filename"))


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


ROUTES: tuple[tuple[str, str, AdminHandler], ...] = (
    ("GET", "/health", lambda s, r, b: {"ok": True}),
    ("GET", "/counters", lambda s, r, b: s.counters()),
    ("POST", "/counters/reset", lambda s, r, b: s.reset_counters()),
    ("GET", "/faults", lambda s, r, b: s.faults()),
    ("POST", "/faults", lambda s, r, b: s.set_faults(b)),
    ("POST", "/clients", lambda s, r, b: s.add_client(**b)),
    ("POST", "/revoke", lambda s, r, b: s.revoke(b.get("client_id"))),
    ("POST", "/clock/advance", lambda s, r, b: s.advance_clock(b["seconds"])),
    ("POST", "/seed/project", lambda s, r, b: s.seed_project(**b)),
    ("POST", "/seed/company", lambda s, r, b: s.seed_company(**b)),
    ("POST", "/seed/documents", lambda s, r, b: s.seed_documents(**b)),
    ("POST", "/seed/file", _seed_file),
    ("GET", "/requests", lambda s, r, b: s.requests(_bool(r.query.get("clear")))),
    ("GET", "/quotas", lambda s, r, b: s.quotas(_bool(r.query.get("clear")))),
    ("GET", "/records", lambda s, r, b: s.records()),
    ("GET", "/documents/{id}", lambda s, r, b: s.document(r.match_info["id"])),
    ("POST", "/documents/{id}/state", lambda s, r, b: s.set_document_state(r.match_info["id"], b["state"])),
    ("GET", "/enrichment/{kind}", lambda s, r, b: s.enrichment(r.match_info["kind"])),
    ("POST", "/reset", lambda s, r, b: s.reset()),
)


def add_admin_routes(app: web.Application, emu: Emulator, prefix: str) -> AdminService:
    service = AdminService(emu)
    for method, path, fn in ROUTES:
        app.router.add_route(method, prefix + path, _wrap(service, fn))
    return service
