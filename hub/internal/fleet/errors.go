package fleet

import (
	"errors"
	"fmt"
)

// Errors about the apps the fleet holds, worded to follow the app's name ("app %q is %w").
var (
	ErrUnknownApp     = errors.New("not known to the hub")
	ErrNoDesiredState = errors.New("no rendered desired state")
	ErrNoRemovalHeld  = errors.New("no removal is held")
)

// RevisionError says that an app's desired revision is not the one an operator named.
type RevisionError struct {
	App, Desired, Asked string
}

func (e *RevisionError) Error() string {
	return fmt.Sprintf("the desired revision of %s is %s, not %s", e.App, e.Desired, e.Asked)
}
