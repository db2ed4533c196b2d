package images

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// splitShow splits Show output into file name -> body.
func splitShow(t *testing.T, out string) (order []string, bodies map[string]string) {
	t.Helper()
	bodies = map[string]string{}
	var cur string
	for _, line := range strings.SplitAfter(out, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "=== "); ok && strings.HasSuffix(name, " ===") {
			cur = strings.TrimSuffix(name, " ===")
			order = append(order, cur)
			continue
		}
		if cur == "" && line != "" {
			t.Fatalf("Show output starts without a header: %q", line)
		}
		bodies[cur] += line
	}
	return order, bodies
}

func TestShow(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Show(dir, &out, OpenOptions{}); err != nil {
		t.Fatalf("Show: %v\n%s", err, out.String())
	}
	order, bodies := splitShow(t, out.String())
	wantOrder := []string{inventoryName, taskName(testPid), mmName(testPid), filesName(testPid), pagemapName(testPid), pagesName(testPid, 0), taskName(testPid + 1), "README"}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("Show file order (-want +got):\n%s", diff)
	}
	for _, name := range wantOrder[:len(wantOrder)-1] {
		if !json.Valid([]byte(bodies[name])) {
			t.Errorf("Show body of %s is not valid JSON:\n%s", name, bodies[name])
		}
	}
	if !strings.HasPrefix(bodies["README"], "skipped: ") {
		t.Errorf("Show body of README = %q, want it skipped", bodies["README"])
	}
	var pages struct {
		DataOffset int64 `json:"data_offset"`
		DataSize   int64 `json:"data_size"`
	}
	if err := json.Unmarshal([]byte(bodies[pagesName(testPid, 0)]), &pages); err != nil {
		t.Fatal(err)
	}
	if pages.DataSize != int64(len(samplePageData())) {
		t.Errorf("Show pages data size = %d, want %d", pages.DataSize, len(samplePageData()))
	}
	var task map[string]any
	if err := json.Unmarshal([]byte(bodies[taskName(testPid)]), &task); err != nil {
		t.Fatal(err)
	}
	if task["comm"] != "target" {
		t.Errorf("Show task comm = %v, want target", task["comm"])
	}

	// Output must not depend on protojson's randomized whitespace.
	var again bytes.Buffer
	if err := Show(dir, &again, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("Show output differs between runs")
	}
}

func TestShowReportsBadFiles(t *testing.T) {
	dir := t.TempDir()
	writeSampleDump(t, dir)
	if err := os.Remove(filepath.Join(dir, inventoryName)); err != nil {
		t.Fatal(err)
	}
	mm := filepath.Join(dir, mmName(testPid))
	data, err := os.ReadFile(mm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mm, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Show(dir, &out, OpenOptions{})
	if err == nil {
		t.Fatalf("Show of a dump with a bad image succeeded:\n%s", out.String())
	}
	for _, want := range []string{"inventory.img missing", mmName(testPid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Show error %q does not mention %q", err, want)
		}
	}
	_, bodies := splitShow(t, out.String())
	if !strings.HasPrefix(bodies[mmName(testPid)], "error: ") {
		t.Errorf("Show body of the truncated mm image = %q, want an error", bodies[mmName(testPid)])
	}
	// The good images are still shown.
	if !json.Valid([]byte(bodies[taskName(testPid)])) {
		t.Errorf("Show body of task image is not valid JSON:\n%s", bodies[taskName(testPid)])
	}

	// A single image file can be shown too.
	out.Reset()
	if err := Show(filepath.Join(dir, taskName(testPid)), &out, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, bodies := splitShow(t, out.String()); !json.Valid([]byte(bodies[taskName(testPid)])) {
		t.Errorf("Show of one file is not valid JSON:\n%s", out.String())
	}
}
