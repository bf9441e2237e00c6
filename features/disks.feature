@disks
Feature: Disks and boot configs
  A disk is a copy-on-write clone of an image, exported as an iSCSI target. A node's boot config
  says which disk it boots; one node may own several disks and switch between them.

  Background:
    Given an RBD image "base" in the site's pool
    And the administrator imported RBD image "base" into my project as "golden"

  Scenario: One node, two disks: switch which one it boots
    When I create disk "first" from image "golden"
    And I create disk "second" from image "golden"
    Then my project has the disk "first", exported as an iSCSI target
    And my project has the disk "second", exported as an iSCSI target
    When I make node A boot disk "first"
    Then node A's boot script boots disk "first"
    And node A logs into its disk over iSCSI with its CHAP secret and sees the size of image "golden"
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I make node A boot disk "second"
    Then node A's boot script boots disk "second"
    And node A logs into its disk over iSCSI with its CHAP secret and sees the size of image "golden"
    And my project has the disk "first", exported as an iSCSI target
    When I stop node A from netbooting
    Then node A no longer netboots: it gets the no-boot-config script
    And BMI, Ceph, iSCSI and HIL agree about my project

  @boots
  Scenario: One node, two disks: the node really boots the one its boot config names
    Given the site's bootable image, called "bootable"
    When I provision node A from image "bootable"
    And I create disk "second" from image "bootable"
    Then node A boots to its marker
    When I make node A boot disk "second" instead of the one it was provisioned with
    Then node A's boot script boots disk "second"
    And node A boots disk "second": BMI saw its OS log into that disk, and it finds no state record there
    When I stop node A from netbooting
    Then node A no longer netboots: it gets the no-boot-config script
