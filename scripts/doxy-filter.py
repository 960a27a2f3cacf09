#!/usr/bin/python3
"""doxy-filter.py - Doxygen's INPUT_FILTER for include/tern/*.h.

tern's headers are written for people: plain /* */ comments above a
declaration, one comment above a run of related declarations, and a
trailing /* */ after a struct field.  Doxygen reads only /** */ and
/**< */, so this filter rewrites a header on its way into Doxygen (the
file itself is untouched):
  - a comment followed, without a blank line, by declarations becomes a
    doc comment repeated before each declaration of the run, so every
    function of a group is documented by the group's comment;
  - a trailing comment after code becomes a /**< */ member comment;
  - the file's opening comment becomes the file's documentation.
Line numbers are kept (Doxygen's warnings point at the real lines): a
repeated comment is written on the declaration's own line.
"""
import re
import sys


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = list(lines)
    n = len(lines)
    i = 0
    first = True
    while i < n:
        line = lines[i]
        s = line.strip()
        if s.startswith("/*") and not s.startswith("/**"):
            # a comment block from i to j (inclusive)
            j = i
            while "*/" not in lines[j]:
                j += 1
            text = " ".join(l.strip().lstrip("/*").rstrip("*/").strip() for l in lines[i:j + 1])
            text = re.sub(r"\s+", " ", text).strip()
            if first:
                # the file's own comment (kept on its line: "@file" then the text)
                out[i] = line.replace("/*", "/** @file", 1)
                first = False
                i = j + 1
                continue
            first = False
            nxt = lines[j + 1].strip() if j + 1 < n else ""
            if nxt == "":
                # a section divider, or prose about what follows a blank line:
                # for the reader, not any one declaration's documentation
                i = j + 1
                continue
            divider = re.match(r"\s*/\*\s*-{3,}.*-{3,}", line)
            if divider:
                # "/* ---- title ---- */" names a section: not documentation
                # (and Doxygen's markdown would make its dashes em dashes);
                # the prose under it, if any, documents what follows
                if j == i:
                    i = j + 1
                    continue
                text = re.sub(r"^-{3,}.*?-{3,}\s*", "", text)
                out[i] = line[:line.index("/*")] + "/**"
            else:
                out[i] = line.replace("/*", "/**", 1)
            # declarations that follow without a blank line share this comment
            k = j + 1
            seen_first = False
            depth = 0
            while k < n and lines[k].strip() != "" and depth >= 0:
                t = lines[k]
                ts = t.strip()
                if depth == 0 and not ts.startswith(("/*", "*", "#", "}")):
                    if seen_first and re.match(r"[A-Za-z_].*\(", ts) and not t.startswith(" "):
                        out[k] = "/** " + text.replace("*/", "* /") + " */ " + t
                    seen_first = True
                depth += t.count("{") - t.count("}")
                if ts.startswith("/*"):
                    break
                k += 1
            first = False
            i = j + 1
            continue
        if first and s and not s.startswith("/*"):
            first = False
        # a trailing member comment
        m = re.match(r"^(\s*\S.*?;\s*)/\*(?!\*)(.*)$", line)
        if m:
            # keep a group comment repeated onto this line (out[i] ends with
            # the line itself): the declaration gets both, not the trailing
            # note alone
            out[i] = out[i][:len(out[i]) - len(line)] + m.group(1) + "/**<" + m.group(2)
            # a trailing comment continued on the next lines stays as it is
        i += 1
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
