#!/usr/bin/env bash
# The newcomer's path, verbatim: install tern into a temporary prefix, then
# build and run the README's programs with the README's own commands.
#
#   install_readme.sh README.md BUILD_DIR
#
# The README marks what this test uses with an HTML comment (invisible
# when rendered) before a fenced block:
#   <!-- readme-test: file NAME -->               the block is saved as NAME
#   <!-- readme-test: file NAME.c; serve PATH --> likewise; the program is a
#                                                 server: ./NAME ADDR, GET PATH
#   <!-- readme-test: run -->                     shell commands, run as written
# Every `run` block runs, in order, in one bash session (as a reader's
# terminal) in a fresh directory holding the files, with HOME set to a
# temporary directory into which tern is installed as $HOME/.local (the
# prefix the README tells the reader to use without root).  The commands
# must succeed without printing a warning.  Then each program NAME.c runs:
# ./NAME, and build/NAME if the commands made one; a plain program must
# exit 0 within 20 s; a server is started on a free port, must answer
# 200 to GET PATH, and is stopped with SIGTERM.
# Unless the build keeps it (TERN_INSTALL_LTO), the installed libtern.a
# must hold no LTO bytecode.
set -euo pipefail

readme=$1
build=$2
keep_lto=0
grep -q '^TERN_INSTALL_LTO:BOOL=ON$' "$build/CMakeCache.txt" && keep_lto=1

for tool in cc pkg-config curl python3 cmake; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

tmp=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export HOME=$tmp/home
prefix=$HOME/.local
mkdir -p "$HOME" "$tmp/work"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install $build --prefix $prefix"; }
[ -f "$prefix/lib/pkgconfig/tern.pc" ] || {
  echo "SKIP: this build installs tern.pc elsewhere than lib/pkgconfig (CMAKE_INSTALL_LIBDIR):"
  find "$prefix" -name tern.pc
  exit 77
}

lib=$(find "$prefix" -name libtern.a | head -1)
if [ "$keep_lto" != 1 ] && command -v objdump >/dev/null; then
  if objdump -h "$lib" | grep -q '\.gnu\.lto_'; then
    fail "the installed $lib carries LTO bytecode (links would be slow)"
  fi
fi

# Split the README into its marked blocks.
python3 - "$readme" "$tmp/work" >"$tmp/plan" <<'EOF'
import os, re, sys
readme, work = sys.argv[1], sys.argv[2]
lines = open(readme, encoding="utf-8").read().split("\n")
directive, block, fence, runs = None, None, None, []
for n, line in enumerate(lines, 1):
    if block is not None:
        if line.strip() == fence:
            if directive == "run":
                runs.append("".join(l + "\n" for l in block))
            else:
                m = re.fullmatch(r"file\s+(\S+)(?:\s*;\s*serve\s+(\S+))?", directive)
                if not m:
                    sys.exit(f"README.md:{start}: unknown readme-test directive '{directive}'")
                name, path = m.groups()
                with open(os.path.join(work, name), "w") as f:
                    f.write("".join(l + "\n" for l in block))
                if name.endswith(".c"):
                    print(f"program {name[:-2]} {path or '-'}")
            directive, block = None, None
        else:
            block.append(line)
        continue
    m = re.fullmatch(r"\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*", line)
    if m:
        directive, start = m.group(1), n
        continue
    if directive is not None and line.startswith("```"):
        fence = re.match(r"`+", line).group(0)
        block = []
    elif directive is not None and line.strip():
        sys.exit(f"README.md:{start}: readme-test marker not followed by a fenced block")
with open(os.path.join(work, "readme_commands.sh"), "w") as f:
    f.write("".join(runs))
if not runs:
    sys.exit("README.md: no readme-test run block")
EOF
grep -q '^program ' "$tmp/plan" || fail "README.md marks no program (<!-- readme-test: file NAME.c -->)"

cd "$tmp/work"
echo "--- the README's commands, in $PWD with HOME=$HOME:"
cat readme_commands.sh
echo "---"
if ! bash -e readme_commands.sh >commands.log 2>&1; then
  cat commands.log
  fail "the README's commands failed"
fi
cat commands.log
if grep -q 'warning:' commands.log; then
  fail "the README's commands print warnings"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_server() {  # exe path
  local exe=$1 path=$2 port pid code=000
  port=$(free_port)
  "$exe" "127.0.0.1:$port" >"$tmp/server.out" 2>&1 &
  pid=$!
  servers+=("$pid")
  for _ in $(seq 100); do
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$port$path" || true)
    [ "$code" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$code" != 200 ]; then
    cat "$tmp/server.out"
    fail "$exe 127.0.0.1:$port: GET $path answered $code, not 200"
  fi
  echo "$exe: GET $path -> 200 $(head -c 200 "$tmp/body")"
}

run_program() {  # exe
  local exe=$1 rc=0
  timeout 20 "$exe" >"$tmp/prog.out" 2>&1 || rc=$?
  cat "$tmp/prog.out"
  [ "$rc" = 0 ] || fail "$exe exited with status $rc"
  echo "$exe: exit 0"
}

ran=0
while read -r _ name path; do
  for exe in "./$name" "./build/$name"; do
    [ -x "$exe" ] || continue
    if [ "$path" = - ]; then run_program "$exe"; else run_server "$exe" "$path"; fi
    ran=$((ran + 1))
  done
  [ -x "./$name" ] || fail "the README's commands did not build ./$name from $name.c"
done <"$tmp/plan"
echo "ok: $ran programs built from README.md ran"
