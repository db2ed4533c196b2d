//go:build linux

package files

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/gocrpb"
)

// namespaceKind is an fd open on a namespace file (/proc/PID/ns/TYPE,
// man 7 namespaces), restored when it names a namespace its process is
// in: that one is the process's again after a restore, opened by gocr
// where the restored process is in gocr's namespace of the type, and by
// the process itself (FixupOpen on /proc/self/ns/TYPE) where it is in
// one of its own (a job dumped in a restore's PID namespace, or in a time
// namespace of its own). A namespace the process is not in (a setns(2)
// target, another container's) is refused: nothing at restore could
// name it.
type namespaceKind struct{}

func init() { register(namespaceKind{}) }

func (namespaceKind) Name() string { return "namespace" }

// nsfsMagic is NSFS_MAGIC (include/uapi/linux/magic.h), the file system
// of namespace files.
const nsfsMagic = 0x6e736673

// namespaceTypes are the names nsfs gives its files' links, "TYPE:[INO]"
// (fs/nsfs.c ns_dname: the namespace operations' name and the inode
// number, which is the namespace's). pid_for_children and
// time_for_children name "pid" and "time" namespaces.
var namespaceTypes = []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"}

// namespaceType is the type of namespace e names, or "".
func namespaceType(e *Entry) string {
	typ, rest, ok := strings.Cut(e.Target, ":[")
	if !ok || !strings.HasSuffix(rest, "]") || e.Type() != unix.S_IFREG {
		return ""
	}
	for _, t := range namespaceTypes {
		if t == typ {
			return typ
		}
	}
	return ""
}

func (namespaceKind) Match(e *Entry) bool {
	if namespaceType(e) == "" {
		return false
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/fd/%d", e.Pid, e.Fd), &fs); err != nil {
		return false
	}
	return fs.Type == nsfsMagic
}

// sameNamespace tells whether the namespace file at path (a /proc/PID/ns
// link, followed) is st: a namespace is its nsfs inode (man 7
// namespaces, "The /proc/[pid]/ns/ directory").
func sameNamespace(path string, st *unix.Stat_t) (bool, error) {
	var ns unix.Stat_t
	if err := unix.Stat(path, &ns); err != nil {
		return false, err
	}
	return ns.Dev == st.Dev && ns.Ino == st.Ino, nil
}

func (namespaceKind) Dump(e *Entry, fd *gocrpb.Fd) error {
	typ := namespaceType(e)
	own, err := sameNamespace(fmt.Sprintf("/proc/%d/ns/%s", e.Pid, typ), &e.Stat)
	if err != nil {
		return fmt.Errorf("read the process's %s namespace: %w", typ, err)
	}
	if !own {
		return fmt.Errorf("names a %s namespace the process is not in, which gocr cannot restore", typ)
	}
	gocrs, err := sameNamespace("/proc/self/ns/"+typ, &e.Stat)
	if err != nil {
		return fmt.Errorf("read gocr's %s namespace: %w", typ, err)
	}
	fd.Kind = &gocrpb.Fd_Namespace{Namespace: &gocrpb.NamespaceFd{Type: typ, GocrNamespace: gocrs}}
	return nil
}

// newNamespace says why the restore puts the processes in a new
// namespace of type typ, or "": --pidns makes a PID namespace and, with
// it, a mount namespace (restorer/c/restorer.c start_reaper, CLONE_NEWPID
// | CLONE_NEWNS), and the clocks may need a time namespace
// (restorer/timens.go); every other namespace is gocr's.
func (s *Sources) newNamespace(typ string) string {
	switch {
	case (typ == "pid" || typ == "mnt") && s.NewPidNamespace:
		return "in a new PID namespace (--pidns), with a mount namespace of its own"
	case typ == "time" && s.NewTimeNamespace:
		return "in a time namespace of its own, for clocks of another boot"
	}
	return ""
}

func (namespaceKind) Open(s *Sources, fd *gocrpb.Fd) (int32, error) {
	ns := fd.GetNamespace()
	if ns == nil || fd.File == nil {
		return 0, errors.New("no namespace in the image")
	}
	if !ns.GocrNamespace {
		// The process's own namespace, not gocr's: a placeholder the
		// process replaces (Finish).
		nfd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		return s.AddFd(nfd, fd.File.Path), nil
	}
	if why := s.newNamespace(ns.Type); why != "" {
		return 0, fmt.Errorf("it names the process's %s namespace, which was gocr's, and this restore puts the process %s: the fd would name another namespace than the dumped one", ns.Type, why)
	}
	// The process's namespace of this type is gocr's, at the dump and
	// now: gocr's own namespace file is the one, one open file
	// description shared as the dumped one was.
	path := "/proc/self/ns/" + ns.Type
	nfd, err := unix.Open(path, openFlags(fd)|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	return s.AddFd(nfd, fd.File.Path), nil
}

// Finish opens the process's own namespace file inside it, over the
// placeholder Open put at its number, for a namespace that is not
// gocr's. Every fd opens it, those that shared an open file description
// too: the description of a namespace file has no offset (fs/nsfs.c,
// no_llseek), only its status flags, which each fd then has its own of.
func (namespaceKind) Finish(fd *gocrpb.Fd) []Fixup {
	ns := fd.GetNamespace()
	if ns == nil || ns.GocrNamespace {
		return nil
	}
	return []Fixup{{Op: FixupOpen, Fd: fd.Fd, Path: "/proc/self/ns/" + ns.Type, Flags: uint32(openFlags(fd)), Cloexec: fd.Cloexec}}
}
