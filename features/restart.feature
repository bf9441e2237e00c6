@bmid-restart @boots @consoles
Feature: Running nodes keep their disks while bmid restarts, crashes and is upgraded
  Every diskless node reads and writes its root disk through bmid's iSCSI target. Nodes booted from
  the stay-up image keep writing, reading back and verifying blocks on their disks (open-iscsi's
  iscsid recovers their sessions); bmid is restarted the three ways an operator's bmid goes down,
  and after each one both nodes must go on with no I/O error and no mismatch.

  Scenario: Two nodes ride through a graceful restart, a crash and an upgrade of bmid
    Given the site's stay-up image, called "stayup"
    When I provision node A from image "stayup"
    And I provision node B from image "stayup"
    Then node A's boot script boots its disk
    And node A and node B boot and keep verifying their disks
    When bmid is restarted gracefully
    Then node A and node B keep verifying their disks without errors
    When bmid is killed and started again
    Then node A and node B keep verifying their disks without errors
    When bmid is upgraded and restarted
    Then node A and node B keep verifying their disks without errors
    When I power off node A
    And I power off node B
    And I deprovision node B
    And I deprovision node A
    Then node A's iSCSI target is gone
    And node A's clone is gone from Ceph
    And BMI, Ceph, iSCSI and HIL agree about my project
