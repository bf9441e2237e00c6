@e2e
Feature: End to end (the original acceptance test)
  The original BMI acceptance test: an RBD image becomes a BMI image, a node is provisioned from it,
  the node's disk is snapshotted, a second node is provisioned from the snapshot, and everything is
  removed again; after each step BMI's database, Ceph, the iSCSI target and HIL must agree.

  Scenario: Import, provision, snapshot, provision from the snapshot, deprovision, remove
    Given an RBD image "base" in the site's pool
    When the administrator imports RBD image "base" into my project as "golden"
    Then BMI, Ceph, iSCSI and HIL agree about my project
    When I provision node A from image "golden"
    Then node A's disk is a copy-on-write clone of image "golden"
    And node A's boot script boots its disk
    And node A logs into its disk over iSCSI with its CHAP secret and sees the size of image "golden"
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I snapshot the disk of node A as "snap"
    Then the snapshot "snap" exists in BMI and in Ceph
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I provision node B from snapshot "snap"
    Then node B's disk is a copy-on-write clone of snapshot "snap"
    And node B's boot script boots its disk
    And node B logs into its disk over iSCSI with its CHAP secret and sees the size of image "snap"
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I deprovision node B
    And I remove snapshot "snap"
    Then the snapshot "snap" is gone from BMI and Ceph
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I deprovision node A
    Then node A's iSCSI target is gone
    And node A's clone is gone from Ceph
    And node A no longer netboots: it gets the no-boot-config script
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I remove image "golden"
    Then the image "golden" is gone from BMI and Ceph
    When I remove RBD image "base"
    Then the RBD image "base" is gone from the site's pool

  @boots @consoles
  Scenario: Nodes boot their disks: the second one from the first one's snapshot
    Given the site's bootable image, called "bootable"
    When I provision node A from image "bootable"
    Then node A's boot script boots its disk
    And BMI, Ceph, iSCSI and HIL agree about my project
    And node A boots to its marker
    When I snapshot the disk of node A as "snap"
    Then the snapshot "snap" exists in BMI and in Ceph
    When I provision node B from snapshot "snap"
    Then node B's disk is a copy-on-write clone of snapshot "snap"
    And BMI, Ceph, iSCSI and HIL agree about my project
    And node B boots and shows node A's state record
    When I deprovision node B
    And I remove snapshot "snap"
    Then the snapshot "snap" is gone from BMI and Ceph
    When I deprovision node A
    Then node A's iSCSI target is gone
    And node A's clone is gone from Ceph
    And node A no longer netboots: it gets the no-boot-config script
    And BMI, Ceph, iSCSI and HIL agree about my project
