// Package features embeds the Gherkin feature files of BMI's acceptance
// suite, so bmi-uat runs the features it was built with wherever it is
// installed.
package features

import "embed"

// FS holds every *.feature file of this directory.
//
//go:embed *.feature
var FS embed.FS
