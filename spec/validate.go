package spec

// Validate runs every static check on a loaded workflow and returns the
// diagnostics Load did not already report.
func Validate(w *Workflow) Diagnostics {
	return nil
}
