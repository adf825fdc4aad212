# SPDX-License-Identifier: MIT
# Turns Lua source into the body of a C string literal, one line per line.
# Char by char, because awk implementations disagree on backslashes in gsub.
{
    out = ""
    n = length($0)
    for (i = 1; i <= n; i++) {
        c = substr($0, i, 1)
        if (c == "\\" || c == "\"")
            out = out "\\" c
        else if (c == "?")
            out = out "\\?"   # no trigraphs under -std=c11
        else
            out = out c
    }
    printf "\"%s\\n\"\n", out
}
