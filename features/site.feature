@site
Feature: Site requirements
  The original `system_requirements.feature`: before trusting a site, check that what BMI needs is
  there and answers, at the versions BMI was built for.

  Scenario: The services BMI needs answer
    Then bmid is ready
    And HIL accepts the administrator's credentials
    And every node the site names is my project's in HIL, with its NIC
    And the site's Ceph pool answers
    And the rbd client is Ceph 16 or newer
    And the iSCSI portal accepts connections
