package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/contextfile"
)

// A dump read in place from a context file (contextfile): its images are
// the context's entries, each read where its data lies in the context,
// so that nothing is copied. Every entry's data starts at a multiple of
// contextfile.Align (4096), and a data image's data at PagesDataOffset
// (4096) in it, so page data stays page-aligned in the context, as in
// an image.

// contextDump is the context a Dir reads in place.
type contextDump struct {
	f  *os.File // the Dir's own descriptor of it
	at map[string]contextfile.Entry
}

// OpenContext opens the dump that the context file f holds, reading its
// images in place. Unless opts trusts every image, f must be one that
// only the user running gocr or root could have written, as an image
// must. Before it returns, the whole context is checked, so that a
// damaged one is refused before a restore creates anything, as when it
// is extracted (contextfile.Extract checks every entry's CRC-32C): its
// structure (contextfile.ReadIndex), the CRC-32C of every entry but the
// data images, and every chunk of every data image against the image's
// own checksums, which cover each of its bytes (docs/IMAGES.md,
// "Integrity"), over every CPU; the data images are not verified again
// when opened. With opts.PagesAsRead the page images' data is left to
// its reader (OpenPagesUnverified). A damaged context's error wraps
// contextfile.ErrDamaged, a damaged page found later too; a
// compressed one is refused with contextfile.ErrCompressed (extract it).
// f stays the caller's; Close releases what the Dir holds.
func OpenContext(f *os.File, opts OpenOptions) (*Dir, error) {
	path := f.Name()
	size, err := checkImageFile(int(f.Fd()), path, opts.TrustImages)
	if err != nil {
		return nil, err
	}
	own, err := dupFile(f, path)
	if err != nil {
		return nil, err
	}
	entries, err := contextfile.ReadIndex(own, size)
	if err != nil {
		own.Close()
		return nil, err
	}
	d := &Dir{Path: path, trust: opts.TrustImages, ctx: &contextDump{f: own, at: map[string]contextfile.Entry{}}, verified: map[string]bool{}, pagesAsRead: opts.PagesAsRead}
	for _, e := range entries {
		d.ctx.at[e.Name] = e
	}
	if err := d.verifyContext(entries, opts.PagesAsRead); err != nil {
		d.Close()
		return nil, err
	}
	inv, err := d.readInventory()
	if errors.Is(err, fs.ErrNotExist) {
		d.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrIncompleteDump)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	d.inventory = inv
	d.setDumpID(DumpID(inv.GetDumpId()))
	return d, nil
}

// dataKinds are the images whose data is checksummed by chunk, by the
// kind their name says.
var dataKinds = map[string]kind{"pages": kindPages, "memfd": kindMemfd, "file": kindSavedFile, "shm": kindSysvShm}

// verifyContext checks the data of every entry of d's context: the data
// images by their chunks (but, with pagesAsRead, the page images': their
// headers and lengths only), the others by their CRC-32C in the context.
func (d *Dir) verifyContext(entries []contextfile.Entry, pagesAsRead bool) error {
	var others []contextfile.Entry
	var data []*dataFile
	var names []string // of data
	for _, e := range entries {
		m := perPidImage.FindStringSubmatch(e.Name)
		k, ok := kind(0), false
		if m != nil {
			k, ok = dataKinds[m[1]]
		}
		if !ok {
			others = append(others, e)
			continue
		}
		img, _ := d.contextImage(e.Name)
		h, err := d.readDataHeader(img, k)
		if err == nil {
			var df *dataFile
			if df, err = readSums(img, h); err == nil && !(pagesAsRead && k == kindPages) {
				data = append(data, df)
				names = append(names, e.Name)
			}
		}
		if err != nil {
			return damagedImage(err)
		}
	}
	if err := contextfile.Verify(d.ctx.f, others); err != nil {
		return err
	}
	if e := sumChunks(data, true, runtime.NumCPU()); e != nil {
		if e.err != nil {
			return e.err
		}
		return damagedImage(d.chunkError(data[e.file], e))
	}
	for _, name := range names {
		d.verified[name] = true
	}
	return nil
}

// damagedImage is the error for an image of a context that does not
// verify: the context is damaged.
func damagedImage(err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: %w", contextfile.ErrDamaged, err)
	}
	return err
}

// contextImage is the image name in d's context.
func (d *Dir) contextImage(name string) (*section, error) {
	e, ok := d.ctx.at[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: d.file(name), Err: unix.ENOENT}
	}
	return &section{f: d.ctx.f, off: e.Offset, size: e.Size, path: d.file(name)}, nil
}

// dupFile is a descriptor of its own for f (F_DUPFD_CLOEXEC, fcntl(2)):
// it shares f's open file description, offset included.
func dupFile(f *os.File, path string) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: dup: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// PageImageBytes is how many bytes the dump's page images take together
// (pages-*.img: headers, page data, checksums).
func (d *Dir) PageImageBytes() int64 {
	var n int64
	if d.ctx != nil {
		for name, e := range d.ctx.at {
			if strings.HasPrefix(name, "pages-") {
				n += e.Size
			}
		}
		return n
	}
	if d.root == nil {
		return 0
	}
	names, _ := listNames(int(d.root.Fd()), d.Path)
	for _, name := range names {
		var st unix.Stat_t
		if strings.HasPrefix(name, "pages-") && unix.Fstatat(int(d.root.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			n += st.Size
		}
	}
	return n
}

// OpenParent opens the dump that d's inventory names as its parent
// (parent_dir: pages d takes unchanged from it), which is ref relative to
// d.Path when not absolute: a directory of images, or a context file,
// read in place as OpenContext does (its page data left to the reader
// if d's is, OpenOptions.PagesAsRead). ref's images must be ones only the
// user running gocr or root could have written, whatever d trusts: a
// chain reaches beyond the dump the user named.
func (d *Dir) OpenParent(ref string) (*Dir, error) {
	if !filepath.IsAbs(ref) {
		ref = filepath.Join(d.Path, ref)
	}
	var st unix.Stat_t
	if err := unix.Stat(ref, &st); err != nil {
		return nil, &os.PathError{Op: "open", Path: ref, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Open(ref)
	}
	f, err := os.OpenFile(ref, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return OpenContext(f, OpenOptions{PagesAsRead: d.pagesAsRead})
}
