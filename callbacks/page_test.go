//go:build linux

package callbacks

import (
	"os"
	"regexp"
	"testing"

	"github.com/gocr/gocr/internal/cheader"
)

// protocolDefines are libgocr/protocol.h's defines, as Go has them.
var protocolDefines = map[string]uint64{
	"GOCR_CB_MAGIC":          pageMagic,
	"GOCR_CB_VERSION":        pageVersion,
	"GOCR_CB_PAGE_SIZE":      pageSize,
	"GOCR_CB_SEQ_SHIFT":      seqShift,
	"GOCR_CB_CODE_MASK":      codeMask,
	"GOCR_CB_REQ_CHECKPOINT": reqCheckpoint,
	"GOCR_CB_REQ_CONTINUE":   reqContinue,
	"GOCR_CB_REQ_RESTARTED":  reqRestarted,
	"GOCR_CB_REQ_FAILED":     reqFailed,
	"GOCR_CB_IDLE":           stIdle,
	"GOCR_CB_BUSY":           stBusy,
	"GOCR_CB_READY":          stReady,
	"GOCR_CB_AFTER":          stAfter,
}

// protocolLayout is struct gocr_cb_page as Go reads it.
var protocolLayout = map[string]uint64{
	"gocr_cb_page.magic":      offMagic,
	"gocr_cb_page.version":    offVersion,
	"gocr_cb_page.pid":        offPid,
	"gocr_cb_page.tid":        offTid,
	"gocr_cb_page.request":    offRequest,
	"gocr_cb_page.status":     offStatus,
	"gocr_cb_page.gocr_pid":   offGocrPid,
	"gocr_cb_page.gocr_start": offGocrStart,
	"sizeof gocr_cb_page":     pageHeader,
}

// TestProtocolMatchesC checks every define and asserted offset of
// libgocr/protocol.h against the Go constants, both ways.
func TestProtocolMatchesC(t *testing.T) {
	src, err := os.ReadFile("../libgocr/protocol.h")
	if err != nil {
		t.Fatal(err)
	}
	defs, errs := cheader.Defines(string(src), map[string]string{
		"GOCR_CALLBACKS_PROTOCOL_H":   "include guard, no value",
		"GOCR_CB_MEMFD_NAME":          "a string: compared below",
		"GOCR_CB_BUILD_BUG_ON_OFFSET": "the assert macro",
	})
	errs = append(errs, cheader.Compare(defs, protocolDefines, "protocolDefines")...)
	errs = append(errs, cheader.Compare(cheader.Layout(string(src)), protocolLayout, "protocolLayout")...)
	for _, err := range errs {
		t.Error(err)
	}
	m := regexp.MustCompile(`#define GOCR_CB_MEMFD_NAME "([^"]*)"`).FindSubmatch(src)
	if m == nil || string(m[1]) != memfdName {
		t.Errorf("GOCR_CB_MEMFD_NAME is %q, Go says %q", m, memfdName)
	}
}
