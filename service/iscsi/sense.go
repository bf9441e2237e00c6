package iscsi

import (
	"github.com/gostor/gotgt/pkg/api"
	"github.com/gostor/gotgt/pkg/scsi"
)

// SCSI status codes we produce ourselves (SAM-5 §5.3).
const (
	statusGood                = 0x00
	statusCheckCondition      = 0x02
	statusBusy                = 0x08
	statusReservationConflict = 0x18
	statusTaskSetFull         = 0x28
	statusTaskAborted         = 0x40
)

// Sense keys (SPC-4 §4.5.6).
const (
	senseMediumError    = 0x03
	senseHardwareError  = 0x04
	senseIllegalRequest = 0x05
	senseUnitAttention  = 0x06
	senseDataProtect    = 0x07
	senseAbortedCommand = 0x0b
	senseMiscompare     = 0x0e
)

// Additional sense codes, ASC<<8 | ASCQ (SPC-4 §4.5.6, table 28).
const (
	ascWriteError             = 0x0c00 // WRITE ERROR
	ascReadError              = 0x1100 // UNRECOVERED READ ERROR
	ascMiscompareDuringVerify = 0x1d00 // MISCOMPARE DURING VERIFY OPERATION
	ascParamListLength        = 0x1a00 // PARAMETER LIST LENGTH ERROR
	ascInvalidOpcode          = 0x2000 // INVALID COMMAND OPERATION CODE
	ascLBAOutOfRange          = 0x2100 // LOGICAL BLOCK ADDRESS OUT OF RANGE
	ascInvalidFieldInCDB      = 0x2400 // INVALID FIELD IN CDB
	ascLUNNotSupported        = 0x2500 // LOGICAL UNIT NOT SUPPORTED
	ascInvalidFieldInParams   = 0x2600 // INVALID FIELD IN PARAMETER LIST
	ascInvalidReleaseOfPR     = 0x2604 // INVALID RELEASE OF PERSISTENT RESERVATION
	ascWriteProtected         = 0x2700 // WRITE PROTECTED
	ascResetOccurred          = 0x2903 // BUS DEVICE RESET FUNCTION OCCURRED
	ascInternalTargetFailure  = 0x4400 // INTERNAL TARGET FAILURE
	ascDataPhaseError         = 0x4b00 // DATA PHASE ERROR
)

// fixedSense builds fixed-format sense data.
func fixedSense(key byte, asc uint16) []byte {
	s := make([]byte, 18)
	s[0] = 0x70
	s[2] = key
	s[7] = 10
	s[12] = byte(asc >> 8)
	s[13] = byte(asc)
	return s
}

// checkCondition is a CHECK CONDITION with fixed-format sense, for the
// answers the transport gives before a command reaches its LU.
func checkCondition(key byte, asc uint16) scsiResult {
	return scsiResult{status: statusCheckCondition, sense: fixedSense(key, asc)}
}

// senseResult is a CHECK CONDITION in the sense format the LU's control
// mode page selects (D_SENSE), built as gotgt builds its own. The caller
// holds u.mu (MODE SELECT changes the format).
func (u *logicalUnit) senseResult(cdb []byte, key byte, asc uint16) scsiResult {
	cmd := &api.SCSICommand{SCB: cdb, SCBLength: len(cdb), Device: u.lu}
	scsi.BuildSenseData(cmd, key, scsi.SCSISubError(asc))
	res := scsiResult{status: statusCheckCondition}
	if cmd.SenseBuffer != nil {
		res.sense = append([]byte(nil), cmd.SenseBuffer.Buffer...)
	}
	return res
}
