"""A process that stores a large file in an S3 artifact store and is SIGKILLed mid-upload:
once the upload's second part has been handed to the client (the first is on its way).

``python -m _workers.s3upload URI FILE MARKER``; the AWS_* variables reach the server.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from modelyard.backends.artifacts import s3 as s3_module
from modelyard.backends.artifacts.base import artifact_store_from_uri


def main() -> None:
    uri, source, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    checked = s3_module._chunks_checked

    def dying(path: Path, expected: str) -> Iterator[bytes]:
        for i, block in enumerate(checked(path, expected)):
            if i == 2:
                marker.write_text("uploading\n")
                os.kill(os.getpid(), signal.SIGKILL)
            yield block

    s3_module._chunks_checked = dying  # type: ignore[assignment]
    artifact_store_from_uri(uri).put_file(source)
    print("stored")


if __name__ == "__main__":
    main()
