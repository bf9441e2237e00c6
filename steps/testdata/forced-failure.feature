Feature: A run that fails mid-scenario
  Used by TestForcedFailureLeavesNothing: the scenario creates something of every kind, then fails;
  the rollback must leave nothing behind in BMI, Ceph, iSCSI or HIL.

  Scenario: Fail after provisioning and snapshotting
    Given an RBD image "base" in the site's pool
    And the administrator imported RBD image "base" into my project as "golden"
    And I provision node A from image "golden"
    And node A's boot script boots its disk
    And I snapshot the disk of node A as "snap"
    And I create disk "spare" from image "snap"
    And I make node B boot disk "spare"
    When the run fails here on purpose
    Then nothing else runs
