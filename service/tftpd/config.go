package tftpd

import (
	"log/slog"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/config"
)

// NewFromConfig builds the server from the boot section of bmid's
// configuration; clients (the DHCP server's leases) and rec may be nil.
// It returns nil when boot.tftp.listen is empty (no TFTP).
func NewFromConfig(c config.Boot, log *slog.Logger, clients Clients, rec Recorder) *Server {
	if c.TFTP.Listen == "" {
		return nil
	}
	return &Server{
		Addr:     c.TFTP.Listen,
		Root:     c.TFTP.Root,
		Preload:  c.TFTP.Preload,
		Log:      log,
		Clients:  clients,
		Recorder: rec,
		Faults:   boot.FaultsFromConfig(c.Faults.TFTP),
	}
}
