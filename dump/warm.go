package dump

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/gocr/gocr/gocrpb"
	"github.com/gocr/gocr/parasite"
)

// warmImageTypes readies every image message type, and the parasite's
// checksum tables, before the freeze.
// The protobuf runtime builds a type's reflection tables, and the file's
// full descriptor, on first use (google.golang.org/protobuf
// internal/impl MessageInfo.init, internal/filedesc lazyInit): half a
// millisecond for the first and tens of microseconds for each type after
// it here, which, spent while the processes are frozen, would be theirs.
func warmImageTypes() {
	warmMessages(gocrpb.File_gocrpb_gocr_proto.Messages())
	parasite.WarmSums()
}

func warmMessages(mds protoreflect.MessageDescriptors) {
	for i := 0; i < mds.Len(); i++ {
		md := mds.Get(i)
		// Map entries have no type of their own: they are warmed with
		// the message holding the map.
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
			m := mt.New()
			proto.Size(m.Interface())
		}
		warmMessages(md.Messages())
	}
}
