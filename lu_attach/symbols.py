"""Find function addresses inside a target process, without stopping it.

All of this is read from /proc/PID/maps and the ELF files on disk (through
/proc/PID/root, so a target in another mount namespace works), before the
target is touched: the symbol work that makes gdb's attach slow happens here,
outside the stop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from . import safefs


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    path: str


def read_maps(pid: int) -> List[Mapping]:
    mappings = []
    with open("/proc/%d/maps" % pid) as handle:
        for line in handle:
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) == 6 else ""
            mappings.append(Mapping(start, end, parts[1], int(parts[2], 16), path))
    return mappings


def base_of(mappings: Iterable[Mapping], path: str) -> Optional[int]:
    """Load base of a mapped ELF: its lowest mapping (file offset 0)."""
    starts = [m.start - m.offset for m in mappings if m.path == path and m.offset == 0]
    return min(starts) if starts else None


def dynamic_symbols(elf_path: str, names: Iterable[str], full_scan: bool = False) -> Dict[str, int]:
    """Offsets (from the load base) of exported functions, found through the GNU hash table."""
    return {name: offset for name, (offset, _) in dynamic_symbol_ranges(elf_path, names, full_scan).items()}


def dynamic_symbol_ranges(elf_path: str, names: Iterable[str], full_scan: bool = False) -> Dict[str, Tuple[int, int]]:
    """(offset from the load base, size) of exported symbols, found through the GNU hash table.

    A hash lookup costs microseconds where walking a large symbol table costs
    most of a second; the full walk is done only when asked for.
    """
    wanted = list(names)
    found: Dict[str, Tuple[int, int]] = {}
    with safefs.open_image(elf_path) as handle:
        elf = ElfWrapper(handle)
        first_load = elf.first_load_vaddr()
        table = elf.elf.get_section_by_name(".gnu.hash")
        if table is not None and hasattr(table, "get_symbol"):
            for name in wanted:
                symbol = table.get_symbol(name)
                if symbol is not None and symbol["st_value"] and symbol["st_shndx"] != "SHN_UNDEF":
                    found[name] = (symbol["st_value"] - first_load, symbol["st_size"])
        if len(found) < len(wanted) and (table is None or full_scan):
            for section_name in (".dynsym", ".symtab"):
                section = elf.elf.get_section_by_name(section_name)
                if not isinstance(section, SymbolTableSection):
                    continue
                for symbol in section.iter_symbols():
                    if (
                        symbol.name in wanted
                        and symbol.name not in found
                        and symbol["st_value"]
                        and symbol["st_shndx"] != "SHN_UNDEF"
                    ):
                        found[symbol.name] = (symbol["st_value"] - first_load, symbol["st_size"])
    return found


class ElfWrapper:
    def __init__(self, handle: BinaryIO) -> None:
        self.elf = ELFFile(handle)

    def first_load_vaddr(self) -> int:
        for segment in self.elf.iter_segments():
            if segment["p_type"] == "PT_LOAD":
                return segment["p_vaddr"] - segment["p_offset"]
        return 0


def _candidate_images(pid: int, mappings: List[Mapping], library_hints: Iterable[str]) -> List[str]:
    paths: List[str] = []
    for hint in library_hints:
        for mapping in mappings:
            if hint in os.path.basename(mapping.path) and mapping.path not in paths:
                paths.append(mapping.path)
    exe = os.readlink("/proc/%d/exe" % pid)
    if exe not in paths:
        paths.append(exe)
    return paths


def find_symbol_ranges(
    pid: int, names: Iterable[str], library_hints: Iterable[str] = (), mappings: Optional[List[Mapping]] = None
) -> Dict[str, Tuple[int, int]]:
    """(absolute address, size) in the target of the named symbols.

    Looks in the libraries whose file names contain one of `library_hints`
    (e.g. "libc.so", "libpython") and in the main executable, in that order.
    """
    names = list(names)
    mappings = read_maps(pid) if mappings is None else mappings
    result: Dict[str, Tuple[int, int]] = {}
    root = "/proc/%d/root" % pid
    for path in _candidate_images(pid, mappings, library_hints):
        missing = [n for n in names if n not in result]
        if not missing:
            break
        base = base_of(mappings, path)
        if base is None:
            continue
        try:
            local = dynamic_symbol_ranges(root + path, missing)
        except (OSError, ELFError, safefs.UnsafePath):
            continue
        except Exception:  # a malformed image (its user controls it): no symbols from it
            continue
        for name, (offset, size) in local.items():
            result[name] = (base + offset, size)
    return result


def find_symbols(pid: int, names: Iterable[str], library_hints: Iterable[str] = ()) -> Dict[str, int]:
    """Absolute addresses in the target of the named functions (see find_symbol_ranges)."""
    return {name: address for name, (address, _) in find_symbol_ranges(pid, names, library_hints).items()}


# `mov $15, %rax; syscall`: libc's rt_sigreturn stub (__restore_rt), in glibc and musl alike.
RESTORER_CODE = bytes.fromhex("48c7c00f0000000f05")


def find_restorer(pid: int, mappings: Optional[List[Mapping]] = None) -> Optional[int]:
    """Address of the C library's `__restore_rt` in the target (not an exported symbol: found by its code)."""
    mappings = read_maps(pid) if mappings is None else mappings
    root = "/proc/%d/root" % pid
    for path in _candidate_images(pid, mappings, ("libc.so", "libc-", "ld-musl")):
        base = base_of(mappings, path)
        if base is None:
            continue
        try:
            with safefs.open_image(root + path) as handle:
                elf = ElfWrapper(handle)
                first_load = elf.first_load_vaddr()
                for segment in elf.elf.iter_segments():
                    if segment["p_type"] != "PT_LOAD" or not segment["p_flags"] & 1:  # PF_X
                        continue
                    code = segment.data()
                    at = code.find(RESTORER_CODE)
                    if at >= 0 and code.find(RESTORER_CODE, at + 1) < 0:
                        return base + segment["p_vaddr"] - first_load + at
        except (OSError, ELFError, safefs.UnsafePath):
            continue
        except Exception:  # a malformed image (its user controls it): nothing found in it
            continue
    return None
