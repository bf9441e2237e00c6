// Package service is the root of BMI's production code. Its subpackages are
// cut by domain (state, ceph, iscsi, boot, hil, the API) and never import
// cmd/, lab/, steps/ or uat/; rules_test.go holds the dependency rules that
// keep it so.
package service
