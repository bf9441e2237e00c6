// Package hilmock is a HIL-compatible emulator: an HTTP server speaking the
// subset of HIL's /v0 REST API that BMI and its acceptance suite use, with
// the same JSON shapes, status codes and error types as HIL (HIL's
// hil/api.py), state kept in SQLite and seeded from a
// YAML inventory.
//
// Hardware is reached only through two drivers declared here: a
// PowerDriver (power on/off/cycle, boot device) and a SwitchDriver (a NIC's
// VLAN membership). Recorder implements both without hardware; the lab
// implements them with libvirt and a Linux bridge.
package hilmock
