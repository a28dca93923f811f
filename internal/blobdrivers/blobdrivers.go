// Package blobdrivers links the gocloud.dev/blob drivers the binary
// supports for backup repositories and move transfers: file:// (always),
// s3:// and gs://.
package blobdrivers

import (
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/gcsblob"  // gs://
	_ "gocloud.dev/blob/s3blob"   // s3://
)
