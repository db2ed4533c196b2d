package test

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// pageImages lists the page images of pid in an image directory:
// pages-PID.img and, for page streams above 0, pages-PID.S.img.
func pageImages(t *testing.T, dir string, pid int) []string {
	t.Helper()
	re := regexp.MustCompile(`^pages-` + strconv.Itoa(pid) + `(\.[0-9]+)?\.img$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if re.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestPageStreams: a process's memory split over several page images,
// written at once by threads the parasite starts in the target, comes back
// exactly (the memory target checks every word of its heap, anonymous,
// file-backed, read-only and PROT_NONE regions; the PROT_NONE data goes
// through gocr, not the parasite, into the middle of a stream).
func TestPageStreams(t *testing.T) {
	needsRoot(t)
	for _, n := range []int{1, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			tg := startTarget(t, "memory", t.TempDir())
			dir := t.TempDir()
			dump(t, tg.pid, dir, "--page-streams", strconv.Itoa(n))
			tg.waitDead(t, "a dump without --leave-running")
			if got := pageImages(t, dir, tg.pid); len(got) != n {
				t.Fatalf("--page-streams %d wrote page images %q, want %d", n, got, n)
			}
			pid := restoreDetached(t, tg, dir, nil)
			checkResult(t, tg, pid)
		})
	}
}

// TestPageStreamsBadInput: a bad --page-streams is refused before the
// target is touched, and a dump whose second page image is missing or cut
// short is refused at restore by that image's name, leaving no process.
func TestPageStreamsBadInput(t *testing.T) {
	needsGocr(t)

	t.Run("DumpBadCount", func(t *testing.T) {
		tg := startTarget(t, "counter")
		waitCounter(t, tg, 10)
		for _, n := range []string{"5", "-1"} {
			r := runGocr(t, nil, "dump", "-t", strconv.Itoa(tg.pid), "-D", t.TempDir(), "--page-streams", n)
			assertOneLineError(t, r, []string{"--page-streams", n}, nil)
		}
		checkIntactCounter(t, tg)
	})

	tg := startTarget(t, "counter")
	waitCounter(t, tg, 20)
	image := t.TempDir()
	dump(t, tg.pid, image, "--page-streams", "2")
	tg.waitDead(t, "a dump without --leave-running")
	second := "pages-" + strconv.Itoa(tg.pid) + ".1.img"
	cases := []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"Missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"Truncated", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()-4096); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, image)
			c.corrupt(t, imageFile(t, dir, second))
			t.Cleanup(func() { tg.killRestored(t, tg.pid) })
			r := runGocr(t, nil, "restore", "-D", dir, "-d")
			assertOneLineError(t, r, []string{second}, nil)
			assertNoProcess(t, tg.pid)
		})
	}
}
