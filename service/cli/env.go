package cli

// The environment variables bmi reads for its server and credentials: the
// original BMI CLI's convention (HIL_USERNAME, HIL_PASSWORD), plus BMI_URL.
// `bmi-lab env` exports these names, so `eval "$(bmi-lab env)"` points bmi
// at the lab.
const (
	EnvURL      = "BMI_URL"
	EnvUser     = "HIL_USERNAME"
	EnvPassword = "HIL_PASSWORD"
)
