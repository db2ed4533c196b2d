//go:build linux

// Command reliability kills gocr at random instants and checks that no
// job is ever lost (docs/RELIABILITY.md, "gocr killed at random"; run by
// `make reliability`). For a single-threaded, a multithreaded and a tree
// job, and two processes counting over a TCP connection (job.c), gocr
// dumps it, with and without --leave-running, or
// restores it, and is SIGKILLed after a delay drawn uniformly over the
// whole length of that operation (measured first). Each trial must end
// in one of the outcomes trial.go lists; any other is a lost job: the
// harness prints the seed and the trial, keeps the evidence, and exits 1.
//
// Usage: reliability -gocr PATH [-trials N] [-seed S] [-trial K] [-work DIR]
package main

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/childfds"
)

func main() {
	gocr := flag.String("gocr", "", "the gocr binary to kill (required)")
	trials := flag.Int("trials", 1000, "trials in all, spread evenly over the kinds")
	seed := flag.Uint64("seed", 0, "seed of the delays (0: one from the clock, printed)")
	only := flag.Int("trial", -1, "run only this trial of the seed (to reproduce a loss)")
	work := flag.String("work", "/var/tmp/gocr-reliability", "where trials run and evidence is kept")
	measureRuns := flag.Int("measure", 5, "uninterrupted runs per kind to measure its length")
	flag.BoolVar(&verbose, "v", false, "note how long each stage of a trial takes")
	kindsRE := flag.String("kinds", "", "run only the kinds matching this regexp (\"tree restore\", \"dump\", ...)")
	flag.Parse()
	if *gocr == "" {
		fail("-gocr is required")
	}
	if os.Geteuid() != 0 {
		fail("needs root: gocr dumps and restores processes with ptrace")
	}
	if err := childfds.CloseOnExecInherited(); err != nil {
		fail("%v", err)
	}
	// The job's processes, orphaned when gocr kills the root or exits
	// after a restore, come to the harness, which reaps them at once
	// (job.waitGone) instead of leaving their PIDs to init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fail("become a subreaper: %v", err)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	bin, err := filepath.Abs(*gocr)
	if err != nil {
		fail("%v", err)
	}
	if err := os.MkdirAll(*work, 0o700); err != nil {
		fail("%v", err)
	}
	if err := os.Chmod(*work, 0o700); err != nil {
		fail("%v", err)
	}
	h := &harness{gocr: bin, work: *work}
	if h.jobBin, err = buildJob(*work); err != nil {
		fail("%v", err)
	}
	re, err := regexp.Compile(*kindsRE)
	if err != nil {
		fail("-kinds: %v", err)
	}
	kinds := []kind{}
	for _, j := range []string{"single", "threads", "tree", "tcp"} {
		for _, op := range []string{opDump, opDumpLeave, opRestore} {
			if k := (kind{j, op}); re.MatchString(k.String()) {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) == 0 {
		fail("-kinds %q matches no kind", *kindsRE)
	}
	fmt.Printf("gocr killed at random: seed %d, %d trials over %d kinds, gocr %s\n", *seed, *trials, len(kinds), bin)

	lengths := map[kind]time.Duration{}
	for _, k := range kinds {
		d, err := h.measure(k, *measureRuns)
		if err != nil {
			fail("measure %v: %v", k, err)
		}
		lengths[k] = d
		fmt.Printf("  %-28s lasts %v (median of %d runs): kills drawn from [0, %v)\n", k, d.Round(time.Microsecond), *measureRuns, d.Round(time.Microsecond))
	}

	tallies := map[kind]*tally{}
	for _, k := range kinds {
		tallies[k] = &tally{outcomes: map[string]int{}}
	}
	var losses []string
	start := time.Now()
	for n := range *trials {
		if *only >= 0 && n != *only {
			continue
		}
		// A trial's kind and delay depend on the seed and its number
		// only, so -trial reproduces it.
		rng := rand.New(rand.NewPCG(*seed, uint64(n)))
		t := &trial{n: n, k: kinds[n%len(kinds)]}
		t.delay = time.Duration(rng.Int64N(int64(lengths[t.k])))
		t.dir = filepath.Join(*work, fmt.Sprintf("trial-%d", n))
		os.RemoveAll(t.dir)
		if err := os.MkdirAll(t.dir, 0o700); err != nil {
			fail("%v", err)
		}
		if t.k.op == opRestore {
			err = h.restoreTrial(t)
		} else {
			err = h.dumpTrial(t)
		}
		if err != nil && t.outcome != lost {
			// The harness itself failed (setting up, ending a job):
			// no verdict on gocr, but nothing must be hidden.
			fail("trial %d (%v, seed %d): %v", n, t.k, *seed, err)
		}
		tl := tallies[t.k]
		tl.trials++
		if t.run.killed {
			tl.killed++
		}
		tl.outcomes[t.outcome]++
		line := fmt.Sprintf("trial %4d  %-28s kill drawn at %9v, sent at %9v, gocr ended at %9v %-6s: %s",
			n, t.k, t.delay.Round(time.Microsecond), t.run.sentAt.Round(time.Microsecond),
			t.run.elapsed.Round(time.Microsecond), map[bool]string{true: "killed", false: "by itself"}[t.run.killed], t.outcome)
		if len(t.notes) > 0 {
			line += " [" + strings.Join(t.notes, "; ") + "]"
		}
		if t.outcome == lost {
			evidence := h.keepEvidence(t, *seed, err)
			if t.j != nil {
				t.j.kill()
			}
			line += fmt.Sprintf("\n  LOST JOB: %v\n  seed %d trial %d; evidence in %s", err, *seed, n, evidence)
			losses = append(losses, fmt.Sprintf("seed %d trial %d (%v): %v", *seed, n, t.k, err))
		} else {
			os.RemoveAll(t.dir)
		}
		fmt.Println(line)
	}

	fmt.Printf("\n%d trials in %v, seed %d\n\n", countTrials(tallies), time.Since(start).Round(time.Second), *seed)
	fmt.Printf("| %-7s | %-20s | %6s | %6s | %s |\n", "job", "gocr", "trials", "killed", "outcomes")
	fmt.Printf("|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 9), strings.Repeat("-", 22), strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 10))
	for _, k := range kinds {
		tl := tallies[k]
		var outs []string
		for o, c := range tl.outcomes {
			outs = append(outs, fmt.Sprintf("%s: %d", o, c))
		}
		slices.SortFunc(outs, func(a, b string) int { return cmp.Compare(a, b) })
		fmt.Printf("| %-7s | %-20s | %6d | %6d | %s |\n", k.job, k.op, tl.trials, tl.killed, strings.Join(outs, "; "))
	}
	fmt.Printf("\nlosses: %d\n", len(losses))
	for _, l := range losses {
		fmt.Println("  " + l)
	}
	if len(losses) > 0 {
		os.Exit(1)
	}
}

// tally counts one kind's trials by outcome.
type tally struct {
	trials   int
	killed   int // trials in which the SIGKILL ended gocr (it had not finished)
	outcomes map[string]int
}

func countTrials(m map[kind]*tally) int {
	n := 0
	for _, t := range m {
		n += t.trials
	}
	return n
}

// measure runs k's gocr operation runs times without killing it and
// returns the median wall time, from gocr's start to its exit: a draw
// below it covers every phase of a run as fast as the median or faster,
// and the other cores' load (the machine is shared) makes the longest
// run an outlier that would leave most draws after gocr had finished.
func (h *harness) measure(k kind, runs int) (time.Duration, error) {
	var lengths []time.Duration
	for i := range runs {
		dir := filepath.Join(h.work, fmt.Sprintf("measure-%d", i))
		os.RemoveAll(dir)
		t := &trial{k: k, dir: dir, delay: -1}
		var err error
		if k.op == opRestore {
			err = h.restoreTrial(t)
		} else {
			err = h.dumpTrial(t)
		}
		if err == nil && t.run.killed {
			err = fmt.Errorf("gocr was killed though nobody killed it")
		}
		if err == nil && t.run.code != 0 {
			err = fmt.Errorf("gocr failed (exit %d): %s", t.run.code, t.run.stderr)
		}
		if err != nil {
			return 0, err
		}
		os.RemoveAll(dir)
		lengths = append(lengths, t.run.elapsed)
	}
	slices.Sort(lengths)
	return lengths[len(lengths)/2], nil
}

// buildJob compiles job/job.c, beside this file, into work.
func buildJob(work string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "job", "job.c")
	out := filepath.Join(work, "job")
	if b, err := exec.Command("gcc", "-O1", "-Wall", "-Werror", "-pthread", "-o", out, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", src, err, b)
	}
	return out, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "reliability: "+format+"\n", args...)
	os.Exit(2)
}
