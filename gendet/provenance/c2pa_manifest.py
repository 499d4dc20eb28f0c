"""C2PA manifests (OpenAI, Adobe Firefly, Microsoft, Google and camera makers sign them), read with c2pa-python.

What the active manifest says: its claim generator, the `c2pa.created` / `c2pa.edited` actions and their
digitalSourceType. How far to trust it, from c2pa's validation state:
- Trusted (signature valid, signer chains to an anchor in `trust_anchors`): strength "signed";
- Valid (signature valid, signer not in the trust list given, e.g. none was given): "declared", and the
  detail says the signer is not trusted here;
- Invalid (tampered content, bad signature, ...): reported with an `error` naming c2pa's failure codes,
  never decisive.
Reading is offline: no remote manifests, no OCSP or timestamp fetches.
"""

from __future__ import annotations

import io
import json
from typing import Any

from gendet.provenance.findings import C2PA, Finding, Says, clip
from gendet.provenance.xmp import source_type_says

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff",
        "heif": "image/heif", "avif": "image/avif", "gif": "image/gif"}
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_RANK: dict[str, int] = {"generated": 3, "edited": 2, "captured": 1, "unknown": 0}


def _context(trust_anchors: str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = json.loads(json.dumps(_OFFLINE))
    if trust_anchors:
        settings["verify"]["verify_trust"] = True
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            out += [a for a in (assertion.get("data") or {}).get("actions") or [] if isinstance(a, dict)]
    return out


def _claim_generator(manifest: dict[str, Any]) -> str:
    infos = manifest.get("claim_generator_info") or []
    names = [" ".join(str(i.get(k, "")) for k in ("name", "version")).strip() for i in infos if isinstance(i, dict)]
    return ", ".join(n for n in names if n) or str(manifest.get("claim_generator") or "unknown")


def summarise(manifest: dict[str, Any]) -> tuple[Says, str, str | None]:
    """(what the manifest says, a detail line, the generating agent if an action names one)."""
    says: Says = "unknown"
    agent, parts = None, []
    for action in _actions(manifest):
        name = str(action.get("action", ""))
        source = action.get("digitalSourceType")
        said: Says = "unknown"
        if isinstance(source, str) and source:
            said, term = source_type_says(source)
            said = "edited" if name == "c2pa.edited" and said == "generated" else said
            parts.append(f"{name} ({term})")
        elif name in ("c2pa.created", "c2pa.edited"):
            parts.append(name)
            said = "edited" if name == "c2pa.edited" else "unknown"
        sw = action.get("softwareAgent")
        sw = sw.get("name") if isinstance(sw, dict) else sw
        if said in ("generated", "edited") and isinstance(sw, str):
            agent = agent or sw
        if _RANK[said] > _RANK[says]:
            says = said
    generator = _claim_generator(manifest)
    detail = f"C2PA manifest by {clip(generator, 60)}" + (f": {', '.join(parts[:4])}" if parts else "")
    return says, detail, agent or (generator if says in ("generated", "edited") else None)


def c2pa_findings(data: bytes, fmt: str, trust_anchors: str | None = None) -> list[Finding]:
    """The finding for the file's active C2PA manifest (empty when there is none)."""
    try:
        import c2pa
    except ImportError:
        return [Finding(C2PA, "unknown", "declared", "C2PA data present but not verified",
                        error="c2pa-python is not installed (pip install c2pa-python)")]
    mime = MIME.get(fmt)
    if mime is None:
        return [Finding(C2PA, "unknown", "declared", f"C2PA data in a {fmt or 'unknown'} file",
                        error=f"c2pa cannot read {fmt or 'this format'}")]
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=_context(trust_anchors))
    except Exception as e:  # noqa: BLE001 - c2pa raises its own error classes for every malformed box
        text = str(e)
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in text:
            return []
        return [Finding(C2PA, "unknown", "declared", "C2PA data present but unreadable",
                        error=f"{type(e).__name__.lstrip('_')}: {clip(text, 120)}")]
    try:
        manifest = reader.get_active_manifest() or {}
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
    finally:
        reader.close()
    failures = [str(f.get("code")) for f in (results.get("activeManifest") or {}).get("failure") or []]
    says, detail, agent = summarise(manifest)
    signer = (manifest.get("signature_info") or {}).get("issuer") or "unknown issuer"
    if state == "Trusted":
        return [Finding(C2PA, says, "signed", f"{detail}; signed by {clip(signer, 40)} (trusted)", generator=agent)]
    if state == "Valid" or failures == ["signingCredential.untrusted"]:
        return [Finding(C2PA, says, "declared", f"{detail}; signature valid but the signer ({clip(signer, 40)}) is "
                        "not in the trust list", generator=agent)]
    problems = [f for f in failures if f != "signingCredential.untrusted"] or [state]
    return [Finding(C2PA, says, "heuristic", detail, error=f"manifest does not validate: {', '.join(problems[:4])}",
                    generator=agent)]
