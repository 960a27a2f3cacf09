#!/usr/bin/env python3
"""bench/locked_insns.py BINARY CALLGRIND_OUT - how many locked instructions
BINARY executed (a lock prefix, xchg with a memory operand, mfence), per
function and per kind, from a profile taken with

    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=OUT BINARY ...

Locked instructions are what a hand-off between coroutines pays beyond its
instruction count; callgrind counts executions deterministically, and the
binary's disassembly says which of its instructions lock.  Only BINARY's own
code is counted (not libc's)."""
import collections
import os
import re
import subprocess
import sys

binary, prof = sys.argv[1], sys.argv[2]
locked = {}
fn = None
dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', binary], capture_output=True,
                     text=True, check=True).stdout
for line in dis.splitlines():
    m = re.match(r'^([0-9a-f]+) <(.*)>:', line)
    if m:
        fn = m.group(2)
        continue
    m = re.match(r'^\s+([0-9a-f]+):\s+(\S+)(?:\s+(\S+))?', line)
    if not m:
        continue
    op, arg = m.group(2), m.group(3) or ''
    if op == 'lock' or (op.startswith('xchg') and '(' in arg) or op == 'mfence':
        locked[int(m.group(1), 16)] = (fn, op + (' ' + arg if op == 'lock' else ''))

objs, cur_obj, ours = {}, None, False
name = os.path.basename(binary)
by_fn, by_kind = collections.Counter(), collections.Counter()
addr, skip = 0, False
for line in open(prof):
    m = re.match(r'^(c?ob)=\((\d+)\)(?:\s+(.*))?$', line.rstrip('\n'))
    if m:           # ob= and cob= share one name table
        if m.group(3):
            objs[m.group(2)] = m.group(3)
        if m.group(1) == 'ob':
            ours = os.path.basename(objs.get(m.group(2), '')) == name
        continue
    if line.startswith('calls='):
        skip = True         # the next cost line is the call's inclusive cost
        continue
    m = re.match(r'^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+\S+\s+(\d+)', line)
    if not m:
        continue
    a = m.group(1)
    if a.startswith('0x'):
        addr = int(a, 16)
    elif a[0] in '+-':
        addr += int(a)
    if skip:
        skip = False
        continue
    if ours and addr in locked:
        f, kind = locked[addr]
        by_fn[f] += int(m.group(2))
        by_kind[kind] += int(m.group(2))

print('total', sum(by_fn.values()), flush=True)
for f, c in by_fn.most_common(15):
    print(f'{c:>12}  {f}')
for k, c in by_kind.most_common():
    print(f'{c:>12}  {k}')
