//go:build linux

package restorer

import (
	"encoding/binary"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"testing"
)

// TestABIMatchesC checks every `c`-tagged field offset and every struct
// size against the _Static_asserts of restorer/c/abi.h.
func TestABIMatchesC(t *testing.T) {
	src, err := os.ReadFile("c/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]int{}
	for _, m := range regexp.MustCompile(`BUILD_BUG_ON_OFFSET\(struct (\w+), (\w+), (\d+)\)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[3])
		offsets[m[1]+"."+m[2]] = v
	}
	sizes := map[string]int{}
	for _, m := range regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[2])
		sizes[m[1]] = v
	}
	for cname, v := range map[string]any{
		"rst_vma": rstVma{}, "rst_pages": rstPages{}, "rst_fd": rstFd{}, "rst_siginfo": rstSiginfo{},
		"rst_rlimit": rstRlimit{}, "rst_thread": rstThread{}, "rst_epoll": rstEpoll{}, "rst_tree": rstTree{}, "rst_proc": rstProc{}, "rst_mm_map": rstMmMap{}, "rst_args": rstArgs{},
	} {
		typ := reflect.TypeOf(v)
		want, ok := sizes[cname]
		if !ok {
			t.Errorf("struct %s: no size assert in c/abi.h", cname)
		} else if got := binary.Size(v); got != want {
			t.Errorf("struct %s: C size %d, Go size %d", cname, want, got)
		}
		off := 0
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if tag := f.Tag.Get("c"); tag != "" {
				key := cname + "." + tag
				want, ok := offsets[key]
				if !ok {
					t.Errorf("%s: no offset assert in c/abi.h", key)
				} else if want != off {
					t.Errorf("%s: C offset %d, Go offset %d", key, want, off)
				}
				delete(offsets, key)
			}
			off += binary.Size(reflect.New(f.Type).Elem().Interface())
		}
	}
	for key := range offsets {
		t.Errorf("%s: asserted in C but not tagged in Go", key)
	}
	goOff := map[string]int{}
	off := 0
	for i := 0; i < reflect.TypeOf(rstArgs{}).NumField(); i++ {
		f := reflect.TypeOf(rstArgs{}).Field(i)
		goOff[f.Tag.Get("c")] = off
		off += binary.Size(reflect.New(f.Type).Elem().Interface())
	}
	for name, want := range map[string]int{"state": offState, "err": offErr, "err_step": offErrStep,
		"err_index": offErrIndex, "restorer_base": offRestorerBase, "restorer_size": offRestorerSize,
		"lifeline_fd": offLifelineFd} {
		if got := goOff[name]; got != want {
			t.Errorf("rst_args.%s: constant says %d, struct says %d", name, want, got)
		}
	}
}
