package main

// `report gate`: the regression gate's view of one Go suite's results.
//
//	report gate rerun -known F -list L results.json
//	    prints the top-level tests to run again: failed (or without a
//	    result) and not listed in the known-failures file
//	report gate verdict -label S [-known F] -list L [-rerun R.json] results.json
//	    prints one line per finding:
//	      "broken: S T: ..."      failed, not listed, and failed again on
//	                              its rerun (or there was no rerun)
//	      "now passes: S T: ..."  listed in the known-failures file, passed
//	      "flaky: S T: ..."       failed, passed on its rerun (no break)
//	report gate stale -known F list...
//	    prints "not in suite: T: ..." for each listed test that none of the
//	    given test lists contains (only meaningful for unfiltered runs)
//
// The runner (compat-tests/run) fails the gate on any "broken", "now
// passes" or "not in suite" line; "flaky" lines are information.

import (
	"flag"
	"fmt"
	"sort"
)

func cmdGate(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: report gate rerun|verdict|stale ...")
	}
	switch args[0] {
	case "rerun":
		return gateRerun(args[1:])
	case "verdict":
		return gateVerdict(args[1:])
	case "stale":
		return gateStale(args[1:])
	}
	return fmt.Errorf("unknown gate subcommand %q", args[0])
}

// topResults maps each top-level test of a run to its status ("" = no
// result).
func topResults(r *run) map[string]*result {
	out := map[string]*result{}
	for _, res := range r.sorted() {
		if topLevel(res.Test) {
			out[res.Test] = res
		}
	}
	return out
}

func sortedNames(m map[string]*result) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func failed(status string) bool { return status != "pass" && status != "skip" }

func gateRerun(args []string) error {
	fs := flag.NewFlagSet("gate rerun", flag.ExitOnError)
	knownFile := fs.String("known", "", "known-failures.txt")
	list := fs.String("list", "", "file with the expected top-level test names")
	fs.Parse(args)
	kn, err := readKnown(*knownFile)
	if err != nil {
		return err
	}
	r, err := loadRun(fs.Args(), *list)
	if err != nil {
		return err
	}
	res := topResults(r)
	for _, n := range sortedNames(res) {
		if _, listed := kn[n]; !listed && failed(res[n].Status) {
			fmt.Println(n)
		}
	}
	return nil
}

// failCause is the one-line cause shown for a failed test: its first error,
// or what the harness recorded when it has none.
func failCause(res *result) string {
	if res.Status == "" {
		return "no result (the suite timed out or crashed first)"
	}
	if e := firstError(res.Output); e != "" {
		return e
	}
	return "failed (no error line; see the suite's JSON output)"
}

func gateVerdict(args []string) error {
	fs := flag.NewFlagSet("gate verdict", flag.ExitOnError)
	label := fs.String("label", "go", "suite label")
	knownFile := fs.String("known", "", "known-failures.txt (none: every failure breaks)")
	list := fs.String("list", "", "file with the expected top-level test names")
	rerunFile := fs.String("rerun", "", "results of the rerun of the failed tests")
	fs.Parse(args)
	kn, err := readKnown(*knownFile)
	if err != nil {
		return err
	}
	first, err := loadRun(fs.Args(), *list)
	if err != nil {
		return err
	}
	var again map[string]*result
	if *rerunFile != "" {
		r, err := loadRun([]string{*rerunFile}, "")
		if err != nil {
			return err
		}
		again = topResults(r)
	}
	res := topResults(first)
	for _, n := range sortedNames(res) {
		st := res[n].Status
		if k, listed := kn[n]; listed {
			if st == "pass" {
				fmt.Printf("now passes: %s %s: listed in known-failures.txt (%s); remove its line\n", *label, n, clipN(k.reason, 90))
			}
			continue
		}
		if !failed(st) {
			continue
		}
		cause := failCause(res[n])
		if again == nil {
			fmt.Printf("broken: %s %s: %s\n", *label, n, cause)
			continue
		}
		second, ok := again[n]
		switch {
		case !ok:
			fmt.Printf("broken: %s %s: %s (no rerun result)\n", *label, n, cause)
		case failed(second.Status):
			fmt.Printf("broken: %s %s: failed, and failed again on its rerun: %s\n", *label, n, failCause(second))
		default:
			fmt.Printf("flaky: %s %s: failed, then passed on its rerun: %s\n", *label, n, cause)
		}
	}
	return nil
}

func gateStale(args []string) error {
	fs := flag.NewFlagSet("gate stale", flag.ExitOnError)
	knownFile := fs.String("known", "", "known-failures.txt")
	fs.Parse(args)
	kn, err := readKnown(*knownFile)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, f := range fs.Args() {
		names, err := readLines(f)
		if err != nil {
			return err
		}
		for _, n := range names {
			present[n] = true
		}
	}
	var missing []string
	for n := range kn {
		if !present[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		fmt.Printf("not in suite: %s: listed in known-failures.txt, but the official suites have no such test; remove its line\n", n)
	}
	return nil
}
