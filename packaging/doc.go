// Package packaging holds the nfpm configurations, systemd units and
// maintainer scripts of BMI's Debian packages (make package), and the test
// that builds the packages and checks what they contain.
package packaging
