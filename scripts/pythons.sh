#!/usr/bin/env bash
# Target interpreters that pyenv does not give, made once under .cache/pythons/
# (tests/interpreters.py lists them as NEW):
#   py3.14/         Debian's python3.14 (static libpython), from forky, else sid
#   py3.15/         Debian's python3.15, the same way
#   py3.14-shared/  the same python3.14 with a dynamic main linking libpython3.14.so
#   py3.13t/        a free-threaded (--disable-gil) CPython 3.13 built from
#                   Debian trixie's python3.13 source package
#   py3.14t/, py3.15t/  the same from sid's python3.14 and python3.15 source
#                   packages, once the mirror serves their files (it lists the
#                   packages but answers 404 for the files today: their tests
#                   are skipped with that reason, asked again once a day)
# Newer Debian suites come from the mirror the machine already uses, through a
# private apt configuration (APT_CONFIG): the machine's own apt set-up is not
# touched. Their interpreters bring their own glibc; patchelf points the binary
# at it. Point releases are whatever the suite has today; delete a directory to
# get a newer one.
#
# The free-threaded build takes minutes; a copy of it is kept for the whole
# machine (under ${XDG_CACHE_HOME:-~/.cache}/lu/pythons, or $LU_MACHINE_CACHE),
# so that another checkout (a fresh clone for CI) copies it in a second instead
# of building it again. The build is relocatable: it finds its library next to
# its binary.
#
# Each interpreter is made in a temporary directory and renamed into place
# once complete, so an interrupted run leaves nothing half made. One that cannot
# be made gets a line on stderr and NAME.missing holding the reason, which the
# tests give when they skip it; the next run tries again.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/.cache/pythons"
WORK="$OUT/.work"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MACHINE="${LU_MACHINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lu}/pythons"

say() { echo "pythons: $*" >&2; }

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9                                   # one run at a time (two ./dev test at once)
rm -rf "$OUT"/.tmp.* "$WORK"              # left by an interrupted run
trap 'rm -rf "$WORK"' EXIT

# The interpreter runs and has the modules the tests need.
works() {
    [ -x "$1" ] && "$1" -c "import ssl, ctypes, sqlite3, asyncio, threading" >/dev/null 2>&1
}

# Makes NAME with function FN (which builds it in the directory it is given, and
# prints on stdout why not if it cannot) unless NAME's interpreter EXE already works.
step() {
    local name=$1 exe=$2 fn=$3 start=$EPOCHREALTIME reason
    works "$exe" && { rm -f "$OUT/$name.missing"; return; }
    rm -rf "${OUT:?}/$name"
    if reason=$("$fn" "$name" "$OUT/.tmp.$name") && mv "$OUT/.tmp.$name" "$OUT/$name" && works "$exe"; then
        rm -f "$OUT/$name.missing"
        say "made $name: $("$exe" -c 'import sys; print(sys.version.split()[0])') in $(elapsed "$start") s"
    else
        rm -rf "${OUT:?}/$name" "$OUT/.tmp.$name"
        reason=$(tail -n 1 <<<"${reason:-it does not run}")
        echo "$reason" >"$OUT/$name.missing"
        say "could not make $name ($reason, after $(elapsed "$start") s); its tests will be skipped"
    fi
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Installs the machine's own packages that are missing (patchelf, -dev headers).
host_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "installing ${missing[*]} with apt-get" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null 2>&1 &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { echo "apt-get could not install ${missing[*]}"; return 1; }
}

# The Debian mirror the machine uses (deb822 or one-line sources).
mirror() {
    local uri
    uri=$(sed -nE 's|^URIs: *(https?://[^ ]*/debian/?) *$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$uri" ] || uri=$(sed -nE 's|^deb +(\[[^]]*\] +)?(https?://[^ ]*/debian/?) .*|\2|p' /etc/apt/sources.list 2>/dev/null \
        | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Prints an APT_CONFIG for Debian SUITE ("deb" or "deb-src" lines), its index fetched once per run.
apt_suite() {
    local suite=$1 type=$2 dir="$WORK/apt-$1-$2"
    [ -f "$dir/failed" ] && { cat "$dir/failed"; return 1; }
    if [ ! -f "$dir/ok" ]; then
        mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/empty"
        : >"$dir/status"
        echo "$type [signed-by=$KEYRING] $(mirror) $suite main" >"$dir/sources.list"
        cat >"$dir/apt.conf" <<EOF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/empty";
Dir::Etc::Preferences "$dir/empty/none";
Dir::Etc::PreferencesParts "$dir/empty";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::Cache "$dir/cache";
Dir::Cache::archives "$dir/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::http::Timeout "20";
Acquire::Retries "1";
EOF
        APT_CONFIG="$dir/apt.conf" apt-get update -qq --error-on=any >/dev/null 2>&1 \
            || { echo "cannot read $suite from $(mirror)" | tee "$dir/failed"; return 1; }
        touch "$dir/ok"
    fi
    echo "$dir/apt.conf"
}

# Downloads into $WORK/debs-PKG the .debs of PKG and the rest given, with all they
# depend on, from forky, or sid if forky lacks PKG; prints that directory.
debian_debs() {
    local pkg=$1 dir="$WORK/debs-$1" suite conf candidate why=()
    if [ ! -f "$dir/ok" ]; then
        for suite in forky sid; do
            conf=$(apt_suite "$suite" deb) || { why+=("$conf"); conf=""; continue; }
            candidate=$(APT_CONFIG=$conf apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
            [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && break
            why+=("$suite has no $pkg"); conf=""
        done
        [ -n "$conf" ] || { printf "%s; " "${why[@]}" | sed "s/; $//"; return 1; }
        mkdir -p "$dir"
        # Everything an empty system would need, pinned to the versions apt chose together.
        APT_CONFIG=$conf apt-get -s install --no-install-recommends "$@" 2>/dev/null \
            | awk '/^Inst / { v = $3; sub(/^\(/, "", v); print $2 "=" v }' >"$dir/closure"
        [ -s "$dir/closure" ] || { echo "apt could not resolve $* in $suite"; return 1; }
        (cd "$dir" && APT_CONFIG=$conf xargs apt-get download -qq <closure >/dev/null 2>&1) \
            || { echo "could not download $* from $suite"; return 1; }
        touch "$dir/ok"
    fi
    echo "$dir"
}

# Unpacks the .debs of DIR into PREFIX, except those named in the rest of the arguments.
unpack() {
    local dir=$1 prefix=$2 deb skip
    shift 2
    mkdir -p "$prefix"
    for deb in "$dir"/*.deb; do
        for skip in debconf tzdata "$@"; do
            [[ $(basename "$deb") == "${skip}"_* ]] && continue 2
        done
        dpkg -x "$deb" "$prefix" || { echo "dpkg -x $(basename "$deb") failed"; return 1; }
    done
}

# Makes PREFIX/EXE load the glibc and libraries of PREFIX once PREFIX is renamed to FINAL.
relink() {
    local prefix=$1 exe=$2 final=$3 loader=usr/lib64/ld-linux-x86-64.so.2
    [ -e "$prefix/$loader" ] || { echo "the unpacked libc6 has no /$loader"; return 1; }
    host_packages patchelf || return 1
    patchelf --set-interpreter "$final/$loader" --force-rpath --set-rpath "$final/usr/lib/x86_64-linux-gnu" \
        "$prefix/$exe" || { echo "patchelf failed on $exe"; return 1; }
}

debian_python() {   # NAME TMP
    local name=$1 tmp=$2 version=${1#py} debs
    debs=$(debian_debs "python$version") || { echo "$debs"; return 1; }
    unpack "$debs" "$tmp" || return 1
    relink "$tmp" "usr/bin/python$version" "$OUT/$name" || return 1
    chmod -R a+rX "$tmp"
}

# Debian's libpython3.14.so with a main of two lines, as any program embedding Python has.
shared_python() {   # NAME TMP
    local name=$1 tmp=$2 debs
    debs=$(debian_debs libpython3.14 python3.14) || { echo "$debs"; return 1; }
    unpack "$debs" "$tmp" || return 1
    local lib="$tmp/usr/lib/x86_64-linux-gnu"
    [ -e "$lib/libpython3.14.so.1.0" ] || { echo "libpython3.14 has no libpython3.14.so.1.0"; return 1; }
    printf '%s\n' 'int Py_BytesMain(int argc, char **argv);' \
        'int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }' >"$tmp/main.c"
    # libpython needs the newer glibc of the prefix, which only runs at run time.
    gcc -O2 -o "$tmp/usr/bin/python3.14" "$tmp/main.c" "$lib/libpython3.14.so.1.0" \
        -Wl,--allow-shlib-undefined -Wl,-rpath-link,"$lib" \
        || { echo "gcc could not link a main against libpython3.14.so"; return 1; }
    rm "$tmp/main.c"
    relink "$tmp" usr/bin/python3.14 "$OUT/$name" || return 1
    chmod -R a+rX "$tmp"
}

# Copies NAME, made by this or another checkout, into the machine's cache (once; never fails the run).
keep_for_machine() {   # NAME
    local name=$1
    [ -d "$OUT/$name" ] && [ ! -d "$MACHINE/$name" ] || return 0
    mkdir -p "$MACHINE" 2>/dev/null && cp -a "$OUT/$name" "$MACHINE/.tmp.$name.$$" 2>/dev/null &&
        mv -T "$MACHINE/.tmp.$name.$$" "$MACHINE/$name" 2>/dev/null || rm -rf "$MACHINE/.tmp.$name.$$"
    return 0
}

# CPython VERSION with --disable-gil, from the unmodified upstream tarball in a Debian suite's source
# package (or the copy of it the machine keeps). A download that failed is not tried again for a day
# (the machine keeps why): the suite's source index alone takes a while to fetch.
free_threaded_python() {   # NAME TMP VERSION SUITE
    local name=$1 tmp=$2 version=$3 suite=$4 conf log="$OUT/$1.log" failed="$MACHINE/$1.failed"
    if works "$MACHINE/$name/bin/python${version}t" && cp -a "$MACHINE/$name" "$tmp" && works "$tmp/bin/python${version}t"; then
        say "copied $name from the machine's cache ($MACHINE)"
        return 0
    fi
    if [ -n "$(find "$failed" -mmin -1440 2>/dev/null)" ]; then
        cat "$failed"
        return 1
    fi
    rm -rf "$tmp"
    host_packages make pkg-config libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
        libreadline-dev uuid-dev libncurses-dev xz-utils || return 1
    conf=$(apt_suite "$suite" deb-src) || { echo "$conf"; return 1; }
    mkdir -p "$tmp/src"
    if ! (cd "$tmp/src" && APT_CONFIG=$conf apt-get source -qq --download-only "python$version" >/dev/null 2>&1); then
        local why="$suite has no python$version source package on this mirror"
        APT_CONFIG=$conf apt-cache showsrc "python$version" 2>/dev/null | grep -q "^Package:" &&
            why="the mirror lists $suite's python$version source package but serves none of its files"
        mkdir -p "$MACHINE" 2>/dev/null && echo "$why" >"$failed" 2>/dev/null
        echo "$why"
        return 1
    fi
    local tarball src
    tarball=$(find "$tmp/src" -maxdepth 1 -name "python${version}_*.orig.tar.*" ! -name '*.asc' | head -n 1)
    [ -n "$tarball" ] && tar -xf "$tarball" -C "$tmp/src" || { echo "could not unpack the python$version source"; return 1; }
    src=$(find "$tmp/src" -mindepth 2 -maxdepth 2 -name configure -printf '%h\n' | head -n 1)
    [ -n "$src" ] || { echo "no configure in the python$version source"; return 1; }
    echo "building CPython $version free-threaded (a few minutes, once; log in $log)" >&2
    (
        cd "$src" &&
            ./configure --prefix="$OUT/$name" --disable-gil --without-ensurepip --disable-test-modules &&
            make -j"$(nproc)" &&
            make altinstall DESTDIR="$tmp/root"
    ) >"$log" 2>&1 || { echo "the build failed (see $log)"; return 1; }
    # The install went to $tmp/root$OUT/$name: its content becomes $tmp.
    mv "$tmp/root$OUT/$name" "$tmp.installed" && rm -rf "$tmp" && mv "$tmp.installed" "$tmp" || return 1
    rm -f "$log" "$tmp/lib/libpython${version}t.a" "$tmp"/lib/python"${version}"t/config-*/libpython"${version}"t.a  # 74 MB, for embedding only
    chmod -R a+rX "$tmp"
}

step py3.14 "$OUT/py3.14/usr/bin/python3.14" debian_python
step py3.15 "$OUT/py3.15/usr/bin/python3.15" debian_python
step py3.14-shared "$OUT/py3.14-shared/usr/bin/python3.14" shared_python
free_threaded_313() { free_threaded_python "$1" "$2" 3.13 trixie; }
free_threaded_314() { free_threaded_python "$1" "$2" 3.14 sid; }
free_threaded_315() { free_threaded_python "$1" "$2" 3.15 sid; }
step py3.13t "$OUT/py3.13t/bin/python3.13t" free_threaded_313
keep_for_machine py3.13t
step py3.14t "$OUT/py3.14t/bin/python3.14t" free_threaded_314
keep_for_machine py3.14t
step py3.15t "$OUT/py3.15t/bin/python3.15t" free_threaded_315
keep_for_machine py3.15t
exit 0
