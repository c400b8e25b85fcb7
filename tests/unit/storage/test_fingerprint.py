"""Content fingerprints see an edit whose size and mtime were restored."""

from __future__ import annotations

import os


from rankstack.storage import fingerprint


# content-addressed caches --------------------------------------------------------------------------
def test_fingerprint_sees_an_edit_with_mtime_restored(tmp_path):
    f = tmp_path / "corpus.jsonl"
    f.write_text('{"_id": "a", "text": "cats"}\n')
    st = f.stat()
    before = fingerprint(f)
    f.write_text('{"_id": "a", "text": "dogs"}\n')  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert fingerprint(f) != before
    assert fingerprint(tmp_path) == fingerprint(tmp_path)
