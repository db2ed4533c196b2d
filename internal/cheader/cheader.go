// Package cheader reads the facts a C header of gocr's blobs states about
// the Go<->C interface (parasite/c/abi.h, restorer/c/abi.h): every
// #define, and the offsets and sizes its _Static_asserts pin. The ABI tests
// of both blobs compare them with the Go side, so one truth is checked
// from both ends (house rule: fixed-width fields, asserted on both sides).
package cheader

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	defineLine = regexp.MustCompile(`^\s*#\s*define\s+(\w+)(\(?)(.*)$`)
	cComment   = regexp.MustCompile(`/\*.*?\*/|//.*$`)
	cInteger   = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*$`)
	cName      = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	offsetLine = regexp.MustCompile(`BUILD_BUG_ON_OFFSET\(struct (\w+), (\w+), (\d+)\)`)
	sizeLine   = regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`)
)

// Defines reads every #define of a C header. A value must be an integer
// literal (C's decimal, octal or hex, with any U/L suffix) or the name of
// a define before it: anything else (no value, an expression, a macro
// with parameters, a continued line) is an error unless exempt names the
// define, so a new kind of define is looked at rather than skipped.
// exempt names that the header no longer defines are errors too.
func Defines(src string, exempt map[string]string) (map[string]uint64, []error) {
	defs := map[string]uint64{}
	seen := map[string]bool{}
	var errs []error
	for i, line := range strings.Split(src, "\n") {
		m := defineLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, value := m[1], strings.TrimSpace(cComment.ReplaceAllString(m[3], ""))
		seen[name] = true
		if _, ok := exempt[name]; ok {
			continue
		}
		if prev, ok := defs[name]; ok {
			errs = append(errs, fmt.Errorf("line %d: %s defined again (was %#x)", i+1, name, prev))
		}
		switch {
		case m[2] != "":
			errs = append(errs, fmt.Errorf("line %d: %s takes parameters", i+1, name))
		case cInteger.MatchString(value):
			v, err := strconv.ParseUint(strings.TrimRight(value, "uUlL"), 0, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: %w", i+1, name, err))
			}
			defs[name] = v
		case cName.MatchString(value):
			v, ok := defs[value]
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: %s is %s, not an earlier define", i+1, name, value))
			}
			defs[name] = v
		default:
			errs = append(errs, fmt.Errorf("line %d: %s = %q: want an integer literal or the name of an earlier define", i+1, name, value))
		}
	}
	for name := range exempt {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("%s is exempt but not defined", name))
		}
	}
	return defs, errs
}

// Layout reads the offsets and sizes the header asserts, as
// "struct.field" and "sizeof struct".
func Layout(src string) map[string]uint64 {
	got := map[string]uint64{}
	for _, m := range offsetLine.FindAllStringSubmatch(src, -1) {
		v, _ := strconv.ParseUint(m[3], 10, 64)
		got[m[1]+"."+m[2]] = v
	}
	for _, m := range sizeLine.FindAllStringSubmatch(src, -1) {
		v, _ := strconv.ParseUint(m[2], 10, 64)
		got["sizeof "+m[1]] = v
	}
	return got
}

// Compare lists every name whose values in the header (c) and in the Go
// table differ, or that only one side has; table names the Go table in
// the messages.
func Compare(c, goSide map[string]uint64, table string) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c)) {
		g, ok := goSide[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s (%#x) in the C header has no Go constant in %s", name, c[name], table))
		case g != c[name]:
			errs = append(errs, fmt.Errorf("%s: C says %#x, Go says %#x", name, c[name], g))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(goSide)) {
		if _, ok := c[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: in %s but not in the C header", name, table))
		}
	}
	return errs
}
