"""Quality at the machine: inspection plans on routing steps (copied into operations at
release), results recorded on the terminal, nonconformances that hold the work, signed
dispositions, SPC and scrap reasons."""
