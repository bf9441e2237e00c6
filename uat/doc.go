// Package uat is the acceptance runner behind bmi-uat: it loads a site
// config (configs/uat-<site>.yaml), runs the embedded features
// (github.com/bmi-go/bmi/features) with the step definitions of
// github.com/bmi-go/bmi/steps against the site, and keeps each run's
// results (JUnit XML, cucumber JSON, a pretty log, the rollback journal,
// the consoles when the site has them) in
// test-results/uat/<timestamp>-<site>-<PASS|FAIL>/. It also checks a
// site (read-only) and cleans up after killed runs.
//
// The package is pure Go so bmi-uat builds with CGO_ENABLED=0; the
// in-process local site lives in the steps package's tests.
package uat
