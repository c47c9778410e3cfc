"""Generates the gRPC stubs from the checkout's proto/proto/strata.proto while the package is built.

The proto is copied to `strata_client/_generated/strata.proto` in the build folder and compiled
there with that include path, so the generated modules import each other as
`strata_client._generated.strata_pb2` (no sys.path tricks).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "proto", "proto", "strata.proto")


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        if not os.path.exists(PROTO):
            raise SystemExit(
                f"strata-client: {PROTO} not found; install from a Strata checkout "
                "(pip install ./clients/python)"
            )
        from grpc_tools import protoc

        out = os.path.join(self.build_lib, "strata_client", "_generated")
        os.makedirs(out, exist_ok=True)
        shutil.copy(PROTO, os.path.join(out, "strata.proto"))
        open(os.path.join(out, "__init__.py"), "w").close()
        include = protoc.__file__.rsplit(os.sep, 1)[0] + os.sep + "_proto"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{self.build_lib}",
                f"-I{include}",
                f"--python_out={self.build_lib}",
                f"--grpc_python_out={self.build_lib}",
                os.path.join(self.build_lib, "strata_client", "_generated", "strata.proto"),
            ]
        )
        if code != 0:
            raise SystemExit(f"strata-client: protoc failed ({code}) on {PROTO}")


setup(cmdclass={"build_py": BuildWithStubs})
