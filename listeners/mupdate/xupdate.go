package mupdate

import (
	"fmt"
	"strconv"
)

// KindSeq is the Kind of the Record that Next returns for an XSEQ line of
// an XUPDATE stream: Name holds the master's seq that every record before
// it brings the replica up to.
const KindSeq = "XSEQ"

// kindSync is the first line of the reply to XUPDATE.
const kindSync = "XSYNC"

// XUpdate starts a Rookery change-log stream (see the server's xupdate):
// epoch and seq say what this replica last applied ("" and 0 for
// nothing). It returns whether the master is sending its whole list (full)
// or only what changed since, and the master's epoch. The records follow
// through Next, up to a KindSeq record and the OK that starts the stream.
func (c *Client) XUpdate(epoch string, seq uint64) (full bool, masterEpoch string, err error) {
	if c.streamTag != "" {
		return false, "", errStreaming
	}
	c.w.Command(updateTag, "XUPDATE", epoch, strconv.FormatUint(seq, 10))
	if err := c.Flush(); err != nil {
		return false, "", err
	}
	resp, err := c.r.ReadResponse()
	if err != nil {
		return false, "", fmt.Errorf("mupdate: read reply to XUPDATE: %w", err)
	}
	if isStatus(resp.Kind) {
		return false, "", &ServerError{Status: resp.Kind, Text: resp.Text}
	}
	if resp.Kind != kindSync || len(resp.Args) != 2 || (resp.Args[0] != "FULL" && resp.Args[0] != "RESUME") {
		return false, "", fmt.Errorf("mupdate: unexpected %s line in reply to XUPDATE: %w", resp.Kind, errMalformed)
	}
	c.streamTag = updateTag
	return resp.Args[0] == "FULL", resp.Args[1], nil
}
