"""The command line the table generators share: print the header, or with
--check fail when the checked-in header differs from what would be printed."""
import os
import sys


def main(text, header):
    if sys.argv[1:] == ["--check"]:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), header)
        with open(path) as f:
            if f.read() != text:
                print("%s differs from what %s writes" % (path, sys.argv[0]), file=sys.stderr)
                return 1
        return 0
    if sys.argv[1:]:
        print("usage: %s [--check]" % sys.argv[0], file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
