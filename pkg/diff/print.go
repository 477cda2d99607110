package diff

import (
	"fmt"
	"io"
)

// Print writes the report for a person.
func Print(w io.Writer, r *Report) {
	if r.Identical {
		fmt.Fprintln(w, "identical")
		return
	}
	if len(r.Table) > 0 {
		fmt.Fprintln(w, "partition table:")
		for _, f := range r.Table {
			fmt.Fprintf(w, "  %s: %s -> %s\n", f.Name, f.A, f.B)
		}
	}
	for _, p := range r.Partitions {
		fmt.Fprintf(w, "partition %d (%s, %s): %d bytes differ\n", p.Number, p.Name, orUnknown(p.Filesystem), p.DifferingBytes)
		for _, f := range p.Fields {
			fmt.Fprintf(w, "  %s: %s -> %s\n", f.Name, f.A, f.B)
		}
		for _, f := range p.Files {
			fmt.Fprintf(w, "  %s %s\n", f.Change, f.Path)
			for _, x := range f.Fields {
				fmt.Fprintf(w, "      %s: %s -> %s\n", x.Name, x.A, x.B)
			}
		}
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "  problem: %s\n", pr)
		}
		if len(p.Unexplained) > 0 {
			fmt.Fprintf(w, "  bytes that differ but no field or file explains:\n")
			printRanges(w, p.Unexplained)
		}
	}
	if len(r.Outside) > 0 {
		fmt.Fprintln(w, "bytes outside the partitions that differ:")
		printRanges(w, r.Outside)
	}
}

func printRanges(w io.Writer, rs []Range) {
	for i, r := range rs {
		if i == 20 {
			fmt.Fprintf(w, "    ... and %d more ranges\n", len(rs)-20)
			return
		}
		fmt.Fprintf(w, "    %d-%d (%d bytes)\n", r.Start, r.End-1, r.End-r.Start)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "no filesystem recognised"
	}
	return s
}
