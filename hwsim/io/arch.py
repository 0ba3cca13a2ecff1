"""Arch specs and technology tables: the shipped ones (arch_specs/, see hwsim.io.shipped) and
any path given."""

from __future__ import annotations

from pathlib import Path

from hwsim.errors import SpecError
from hwsim.io.shipped import shipped_dir
from hwsim.io.yamlio import load_model, resolve_named_file
from hwsim.specs.arch import (
    ActionEnergies,
    ArchSpec,
    DistributedSpec,
    TechSpec,
)
from hwsim.specs.resolve import resolve_energies
from hwsim.units import format_bytes, format_hertz

ARCH_DIR = shipped_dir("arch")
TECH_DIR = shipped_dir("tech")


def shipped_archs() -> list[str]:
    return sorted(path.stem for path in ARCH_DIR.glob("*.yaml"))


def shipped_techs() -> list[str]:
    return sorted(path.stem for path in TECH_DIR.glob("*.yaml"))


def arch_path(name_or_path: str | Path) -> Path:
    """`arch_specs/<name>.yaml` for a shipped name (`von_neumann`), else the path as given."""
    return resolve_named_file(str(name_or_path), ARCH_DIR, "arch spec")


def load_arch(name_or_path: str | Path) -> ArchSpec:
    """A shipped arch spec by name (`von_neumann`) or an arch YAML file by path."""
    return load_model(ArchSpec, arch_path(name_or_path), "arch")


def load_tech_file(path: str | Path) -> TechSpec:
    """A technology table (`kind: tech`) from a YAML file."""
    return load_model(TechSpec, path, "tech")


def tech_path(arch: ArchSpec, arch_file: str | Path) -> Path:
    """Where `arch.tech` points: a shipped name (`45nm` → arch_specs/tech/45nm.yaml) or a
    .yaml path relative to the folder of the arch file."""
    if Path(arch.tech).suffix in (".yaml", ".yml"):
        path = Path(arch_file).parent / arch.tech
        if not path.is_file():
            raise SpecError(f"{arch_file}: tech: no tech file at {path} (got {arch.tech!r})")
        return path
    try:
        return resolve_named_file(arch.tech, TECH_DIR, "tech")
    except SpecError as exc:
        raise SpecError(f"{arch_file}: tech: {exc}") from None


def load_tech(arch: ArchSpec, arch_file: str | Path) -> TechSpec:
    """The technology table an arch spec (loaded from `arch_file`) names."""
    return load_tech_file(tech_path(arch, arch_file))


def load_arch_with_energies(name_or_path: str | Path) -> tuple[ArchSpec, ActionEnergies]:
    """An arch spec and its per-action energies, resolved against its tech table."""
    path = arch_path(name_or_path)
    arch = load_model(ArchSpec, path, "arch")
    return arch, resolve_energies(arch, load_tech(arch, path), source=str(path))


def _mm2(area: float) -> str:
    return f"{area:,.0f} mm²" if area >= 1000 else f"{area:.4g} mm²"


def describe_arch(arch: ArchSpec, energies: ActionEnergies) -> str:
    """One line with the numbers an architect checks first."""
    if isinstance(arch, DistributedSpec):
        memory = (
            f"{arch.tiles.count} tiles × {format_bytes(arch.tiles.sram.capacity_bytes)}"
            f" = {format_bytes(arch.sram_bytes)} SRAM, {arch.noc.topology.value} NoC"
        )
    else:
        memory = f"{format_bytes(arch.sram_bytes)} SRAM"
    noc = (
        f", NoC {energies.noc_pj_per_bit_per_hop:.3g} pJ/bit/hop"
        if isinstance(arch, DistributedSpec)
        else ""
    )
    return (
        f"arch {arch.name} ({arch.substrate.value}, {format_hertz(arch.clock_hz)}, "
        f"{arch.peak_macs_per_cycle:,} MACs/cycle, {memory}, DRAM {arch.dram.technology} "
        f"{arch.dram_bandwidth_bytes_per_cycle:g} B/cycle; tech {arch.tech}: "
        f"MAC {energies.mac_pj:.3g} pJ, SRAM {energies.sram_read_pj_per_bit:.3g} pJ/bit"
        f"{noc}, DRAM {energies.dram_read_pj_per_bit:.3g} pJ/bit; "
        f"area {_mm2(energies.area.area_mm2)}{_describe_zeros(arch)})"
    )


def _describe_zeros(arch: ArchSpec) -> str:
    """'; zeros: ...' for a spec whose sparsity section does anything, else ''."""
    sparsity = arch.sparsity
    if not sparsity.active:
        return ""
    parts = []
    if sparsity.compresses:
        levels = [
            f"{level} {form.value}" for level, form in sparsity.compression if form.value != "none"
        ]
        roles = ", ".join(role.value for role in sparsity.compressed_roles)
        parts.append(f"{' and '.join(levels)} compression of {roles}")
    if sparsity.skip_zero_macs:
        roles = ", ".join(role.value for role in sparsity.skip_zero_macs)
        cycles = ", cycles too" if sparsity.skip_cycles else ""
        parts.append(f"MACs skipped on zero {roles}{cycles}")
    return "; zeros: " + "; ".join(parts)


def describe_tech(tech: TechSpec) -> str:
    curve = tech.sram_read_energy_pj_per_access
    return (
        f"tech {tech.name} ({tech.node_nm:g} nm; MAC energies for "
        f"{'/'.join(str(bits) for bits in sorted(tech.mac_energy_pj))}-bit operands, "
        f"SRAM curve {format_bytes(curve[0][0])}–{format_bytes(curve[-1][0])} in "
        f"{len(curve)} points, DRAM {', '.join(tech.dram_energy_pj_per_bit)}; SRAM bit cell "
        f"{tech.sram_bit_cell_area_um2:g} µm²)"
    )
