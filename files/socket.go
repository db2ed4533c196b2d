//go:build linux

package files

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Sockets are one kind per family, each in its own file (unixsocket.go
// for AF_UNIX). A socket no kind takes is refused by socketRefusal, naming
// its family, so a user knows which one gocr lacks.

// socketFamilies names the families a user may meet (include/linux/socket.h).
var socketFamilies = map[int]string{
	unix.AF_UNIX: "unix", unix.AF_INET: "IPv4 (AF_INET)", unix.AF_INET6: "IPv6 (AF_INET6)",
	unix.AF_NETLINK: "netlink", unix.AF_PACKET: "packet", unix.AF_KEY: "PF_KEY",
	unix.AF_BLUETOOTH: "bluetooth", unix.AF_VSOCK: "vsock", unix.AF_ALG: "crypto (AF_ALG)",
	unix.AF_XDP: "XDP", unix.AF_TIPC: "TIPC", unix.AF_CAN: "CAN", unix.AF_RDS: "RDS",
	unix.AF_SMC: "SMC", unix.AF_MCTP: "MCTP", unix.AF_QIPCRTR: "Qualcomm IPC router",
}

// netlinkProtocols names netlink protocols (include/uapi/linux/netlink.h).
var netlinkProtocols = map[int]string{
	unix.NETLINK_ROUTE: "NETLINK_ROUTE", unix.NETLINK_SOCK_DIAG: "NETLINK_SOCK_DIAG",
	unix.NETLINK_AUDIT: "NETLINK_AUDIT", unix.NETLINK_KOBJECT_UEVENT: "NETLINK_KOBJECT_UEVENT",
	unix.NETLINK_GENERIC: "NETLINK_GENERIC", unix.NETLINK_NETFILTER: "NETLINK_NETFILTER",
	unix.NETLINK_XFRM: "NETLINK_XFRM", unix.NETLINK_SELINUX: "NETLINK_SELINUX",
	unix.NETLINK_CONNECTOR: "NETLINK_CONNECTOR",
}

// socketRefusal says why a socket no kind took is not dumped: its family
// (and, for netlink, its protocol), read through gocr's own handle of it
// with SO_DOMAIN and SO_PROTOCOL (man 7 socket).
func socketRefusal(e *Entry) error {
	h, err := takeFd(e.Pid, e.Fd)
	if err != nil {
		return fmt.Errorf("a socket gocr cannot look at (%w): not supported", err)
	}
	defer unix.Close(h)
	dom, err := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("a socket of unknown family (%w): not supported", err)
	}
	name, ok := socketFamilies[dom]
	if !ok {
		name = fmt.Sprintf("family %d", dom)
	}
	proto, _ := unix.GetsockoptInt(h, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if dom == unix.AF_NETLINK {
		if p, ok := netlinkProtocols[proto]; ok {
			name += ", protocol " + p
		} else {
			name += fmt.Sprintf(", protocol %d", proto)
		}
	}
	return fmt.Errorf("a socket of family %s, which gocr does not restore", name)
}
